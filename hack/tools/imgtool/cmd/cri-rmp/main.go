// Command cri-rmp stops and removes every pod sandbox of a CRI runtime, like
// `crictl rmp -fa` (cri-tools cannot be downloaded here). The local cluster's
// down.sh runs it after stopping the kubelet and before stopping containerd,
// so CNI releases the pods' addresses and the shims exit.
//
//	cri-rmp unix:///path/to/containerd.sock
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cri-rmp unix:///path/to/cri.sock")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-rmp:", err)
		os.Exit(1)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-rmp: list sandboxes:", err)
		os.Exit(1)
	}
	failed := false
	for _, s := range resp.Items {
		id := s.Metadata.Namespace + "/" + s.Metadata.Name
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-rmp: stop %s: %v\n", id, err)
			failed = true
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-rmp: remove %s: %v\n", id, err)
			failed = true
			continue
		}
		fmt.Println("removed pod sandbox", id)
	}
	if failed {
		os.Exit(1)
	}
}
