// Command pause is the pod sandbox's process (what registry.k8s.io/pause
// runs): it holds the pod's namespaces, reaps zombies and exits on SIGINT
// or SIGTERM. The local cluster builds it into its sandbox image, since
// images cannot be pulled there.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range c {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
