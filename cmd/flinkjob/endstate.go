package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/internal/jobcheck"
)

// interrupted is the cause of a run's context when a signal stopped it.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string { return "interrupted (" + i.sig.String() + ")" }

// errDuration is the cause of a run's context when --duration elapsed.
var errDuration = errors.New("--duration elapsed")

// runContext is the context of a run: cancelled by the first SIGINT or
// SIGTERM (a second one kills the process as usual, in case the stop
// hangs), and by --duration if positive. The causes tell end apart.
func runContext(duration time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			cancel(interrupted{s})
		case <-done:
		}
	}()
	stop := func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
	if duration > 0 {
		var tcancel context.CancelFunc
		ctx, tcancel = context.WithTimeoutCause(ctx, duration, errDuration)
		prev := stop
		stop = func() { tcancel(); prev() }
	}
	return ctx, stop
}

// endState says how a run ended, for the summary line ("job <status> in
// 2s"), and returns the error the command exits with:
//   - the job ended by itself: "succeeded", or "failed" and its error;
//   - --duration elapsed: an unbounded job "stopped after --duration",
//     exit 0 (what the flag is for); a bounded one stopped before its
//     input ended, its output not committed: exit 1;
//   - SIGINT or SIGTERM: "cancelled", exit 128+signal (130 for Ctrl-C,
//     as shells report it).
//
// A run's error once its context is done is the consequence of the stop
// (the engine's context error, a worker process killed), not a failure.
func endState(ctx context.Context, p *plan.Plan, duration time.Duration, err error) (string, error) {
	if err == nil {
		return "succeeded", nil
	}
	if ctx.Err() == nil {
		return "failed", err
	}
	cause := context.Cause(ctx)
	var sig interrupted
	switch {
	case errors.As(cause, &sig):
		code := 130
		if s, ok := sig.sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		return "cancelled", &exitError{code, fmt.Errorf("cancelled by %s", sig.sig)}
	case errors.Is(cause, errDuration) && jobcheck.UnboundedSource(p) != "":
		return fmt.Sprintf("stopped after --duration %s", duration), nil
	case errors.Is(cause, errDuration):
		return fmt.Sprintf("stopped after --duration %s before its input ended", duration),
			fmt.Errorf("the bounded job did not finish within --duration %s: stopped before its input ended, its output is not complete (run without --duration to finish it)", duration)
	}
	return "failed", err
}
