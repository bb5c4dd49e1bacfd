// Command worker runs one subtask of a FlinkJob (stage S, index i of N) on
// the flinkjob engine. The operator starts one worker pod per subtask; the
// local multi-process runner starts them as processes. Settings come from
// flags, with FLINKJOB_* environment variables as defaults, and the job from
// a mounted file. Exit code 0 means the subtask succeeded; anything else is
// a failure, and the termination message (JSON) says why.
package main

import (
	"os"

	"github.com/flinkjob/flinkjob/engine/gctune"
	"github.com/flinkjob/flinkjob/worker"
)

func main() {
	gctune.Apply() // GOGC 400 under the pod's memory limit (see gctune)
	os.Exit(worker.Main(os.Args[1:]))
}
