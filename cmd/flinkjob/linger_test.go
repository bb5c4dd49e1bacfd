package main

import (
	"slices"
	"strings"
	"testing"
)

// run --exchange-linger is the workers' flag, passed on with --processes
// (before, run did not know it: "flag provided but not defined", though
// the README names it); the in-process run, which has no exchange between
// processes, refuses it, as it does a bad duration.
func TestRunExchangeLinger(t *testing.T) {
	args, err := exchangeLingerArgs("1ms", true)
	if err != nil || !slices.Equal(args, []string{"--exchange-linger", "1ms"}) {
		t.Errorf("worker args %q, %v; want --exchange-linger 1ms", args, err)
	}
	sample := "config/samples/datagen-unbounded.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--exchange-linger", "1ms"}, "--exchange-linger applies to --processes"},
		{[]string{"--exchange-linger", "soon", "--processes"}, `--exchange-linger "soon": want a duration`},
	} {
		code, _, stderr := runCLI(t, append([]string{"run", "-f", sample, "--duration", "1s", "--quiet"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, %s; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
	// The workers read an invalid linger from the environment unless the
	// flag reaches them, so this run fails if run does not pass it on.
	t.Setenv("FLINKJOB_EXCHANGE_LINGER", "not-a-duration")
	bin := buildCLI(t)
	code, stderr := runBinary(t, bin, false, "run", "-f", sample, "--processes", "--duration", "2s", "--exchange-linger", "0")
	if code != 0 || !strings.Contains(stderr, "job stopped after --duration 2s") {
		t.Errorf("--processes --exchange-linger 0: exit %d, %s; want 0", code, stderr)
	}
}
