// Command imgtool builds a container image from local files, without a
// Docker daemon or registry, and writes it as a docker-save tarball that
// `docker load`, `ctr images import` and `kind load image-archive` all read.
//
//	imgtool -o out.tar -t name:tag [-t name:tag2] -entrypoint /app \
//	    [-cmd arg]... [-user 65532:65532] [-workdir /home/nonroot] \
//	    [-env K=V]... [-label K=V]... [-platform linux/amd64] [-nonroot-base] \
//	    SRC:DST[:MODE]...
//
// Each SRC:DST copies a local file to DST in the image (MODE in octal,
// default 0755). With -nonroot-base the image gets a first layer shaped like
// gcr.io/distroless/static:nonroot (what the repository's Dockerfile builds
// FROM): /etc/passwd and /etc/group with root, nobody and nonroot (65532),
// /tmp (1777), /home/nonroot and the CA bundle given by -ca-certs, so the
// daemonless images and the Docker-built ones behave the same. Layers and
// config carry a fixed timestamp (SOURCE_DATE_EPOCH, default 0), so the same
// inputs give the same image digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// entry is one file or directory of a layer.
type entry struct {
	name     string // without leading slash; directories end in "/"
	mode     int64
	uid, gid int
	data     []byte
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("imgtool: ")
	var (
		out        = flag.String("o", "", "output tarball (docker-save format)")
		entrypoint = flag.String("entrypoint", "", "entrypoint (one path; use -cmd for arguments)")
		user       = flag.String("user", "", "user[:group] the image runs as, e.g. 65532:65532")
		workdir    = flag.String("workdir", "", "working directory")
		platform   = flag.String("platform", "linux/amd64", "os/arch of the image")
		nonroot    = flag.Bool("nonroot-base", false, "add a distroless-like base layer (passwd, group, /tmp, /home/nonroot, CA certs)")
		caCerts    = flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs/ca-certificates.crt with -nonroot-base (empty: none)")
		tags, cmd  multi
		envs, labs multi
	)
	flag.Var(&tags, "t", "image reference (repeatable)")
	flag.Var(&cmd, "cmd", "default argument (repeatable)")
	flag.Var(&envs, "env", "environment variable K=V (repeatable)")
	flag.Var(&labs, "label", "label K=V (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: imgtool -o out.tar -t name:tag -entrypoint /app [flags] SRC:DST[:MODE]...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || len(tags) == 0 || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	osName, arch, ok := strings.Cut(*platform, "/")
	if !ok {
		log.Fatalf("-platform %q: want os/arch", *platform)
	}
	mtime := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			log.Fatalf("SOURCE_DATE_EPOCH: %v", err)
		}
		mtime = time.Unix(sec, 0).UTC()
	}

	var layers []v1.Layer
	if *nonroot {
		l, err := layer(baseEntries(*caCerts), mtime)
		if err != nil {
			log.Fatal(err)
		}
		layers = append(layers, l)
	}
	var files []entry
	for _, spec := range flag.Args() {
		e, err := fileEntry(spec)
		if err != nil {
			log.Fatal(err)
		}
		files = append(files, e)
	}
	l, err := layer(withParents(files), mtime)
	if err != nil {
		log.Fatal(err)
	}
	layers = append(layers, l)

	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		log.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: mtime}
	if *entrypoint != "" {
		cf.Config.Entrypoint = []string{*entrypoint}
	}
	cf.Config.Cmd = cmd
	cf.Config.User = *user
	cf.Config.WorkingDir = *workdir
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, envs...)
	if len(labs) > 0 {
		cf.Config.Labels = map[string]string{}
		for _, kv := range labs {
			k, v, _ := strings.Cut(kv, "=")
			cf.Config.Labels[k] = v
		}
	}
	// History entries (one per layer) make `docker history` readable.
	cf.History = nil
	for i := range layers {
		by := "imgtool: files " + strings.Join(flag.Args(), " ")
		if *nonroot && i == 0 {
			by = "imgtool: nonroot base (passwd, group, tmp, home, ca-certificates)"
		}
		cf.History = append(cf.History, v1.History{Created: v1.Time{Time: mtime}, CreatedBy: by})
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		log.Fatal(err)
	}

	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		ref, err := name.NewTag(t)
		if err != nil {
			log.Fatalf("-t %q: %v", t, err)
		}
		refs[ref] = img
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		log.Fatal(err)
	}
	if err := tarball.MultiRefWrite(refs, f); err != nil {
		f.Close()
		os.Remove(tmp)
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		log.Fatal(err)
	}
	d, _ := img.Digest()
	log.Printf("wrote %s: %s %s (%s)", *out, strings.Join(tags, ", "), d, *platform)
}

// fileEntry reads SRC:DST[:MODE].
func fileEntry(spec string) (entry, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return entry{}, fmt.Errorf("%q: want SRC:DST[:MODE]", spec)
	}
	mode := int64(0o755)
	if len(parts) == 3 {
		m, err := strconv.ParseInt(parts[2], 8, 32)
		if err != nil {
			return entry{}, fmt.Errorf("%q: mode: %v", spec, err)
		}
		mode = m
	}
	b, err := os.ReadFile(parts[0])
	if err != nil {
		return entry{}, err
	}
	return entry{name: strings.TrimPrefix(path.Clean("/"+parts[1]), "/"), mode: mode, data: b}, nil
}

// withParents adds the parent directories of files (0755, root) in order.
func withParents(files []entry) []entry {
	seen := map[string]bool{}
	var out []entry
	for _, f := range files {
		dir := path.Dir(f.name)
		var parents []string
		for dir != "." && dir != "/" && !seen[dir] {
			seen[dir] = true
			parents = append([]string{dir}, parents...)
			dir = path.Dir(dir)
		}
		for _, p := range parents {
			out = append(out, entry{name: p + "/", mode: 0o755})
		}
		out = append(out, f)
	}
	return out
}

// baseEntries mirrors what gcr.io/distroless/static:nonroot provides to a
// static Go binary.
func baseEntries(caCerts string) []entry {
	const nonroot = 65532
	es := []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte(
			"root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: nonroot, gid: nonroot},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
	}
	if caCerts != "" {
		b, err := os.ReadFile(caCerts)
		if err != nil {
			log.Printf("warning: no CA certificates in the image: %v", err)
		} else {
			es = append(es,
				entry{name: "etc/ssl/", mode: 0o755},
				entry{name: "etc/ssl/certs/", mode: 0o755},
				entry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: b})
		}
	}
	return es
}

// layer writes entries (deduplicated, in order) into an uncompressed tar
// and wraps it as a layer; go-containerregistry compresses it on write.
func layer(es []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.name] {
			continue
		}
		seen[e.name] = true
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}
