// Package control defines the control objects through which a job's
// workers (the checkpoint leader of a STREAMING job, worker stage 0
// subtask 0, in worker/checkpoint.go) and the operator's manager
// (controllers/savepoints.go) talk. They are small JSON objects in the
// job's storage, under its control URL (<jobdata>/control/ on Kubernetes;
// a worker's FLINKJOB_CONTROL_URL):
//
//	object                   written by         read by   content
//	checkpoint-latest.json   leader             manager   LatestCheckpoint: the latest completed checkpoint (status.lastCheckpoint)
//	savepoint-request.json   manager            leader    SavepointRequest: take a savepoint (and, with stop, checkpoint no more)
//	savepoint-<nonce>.json   leader             manager   SavepointResult: the outcome of the request with that nonce
//	savepoint-final.json     leader, or BATCH   manager   SavepointResult (nonce "final"): a bounded job's final savepoint
//	                         finalize step                (spec.finalSavepoint)
//
// Both sides use these definitions, so a field cannot be renamed on one
// side only. The JSON names and object names are a contract with running
// jobs and stored savepoints: never change them (control_test.go pins
// them). The package imports nothing, so the manager gets none of the
// worker's dependencies through it.
package control

// Object names under the control URL.
const (
	// LatestObject holds a LatestCheckpoint.
	LatestObject = "checkpoint-latest.json"
	// SavepointRequestObject holds a SavepointRequest.
	SavepointRequestObject = "savepoint-request.json"
	// SavepointFinalObject holds the SavepointResult of the final savepoint.
	SavepointFinalObject = "savepoint-final.json"
)

// FinalNonce is the nonce of the final savepoint (spec.finalSavepoint);
// the leader refuses it in a request, so no request's result can be taken
// for the final savepoint.
const FinalNonce = "final"

// SavepointResultObject is the name of the SavepointResult of the request
// with nonce.
func SavepointResultObject(nonce string) string { return "savepoint-" + nonce + ".json" }

// SavepointRequest asks the leader for a savepoint. The leader acts once
// per nonce; the manager removes the request once it has the result.
type SavepointRequest struct {
	Nonce string `json:"nonce"`
	// Stop: no checkpoint starts after this savepoint (the job is about
	// to stop: an upgrade or a suspend with upgradeMode savepoint).
	Stop bool `json:"stop"`
}

// SavepointResult is the outcome of a savepoint: Path (its directory URL)
// on success, Error otherwise.
type SavepointResult struct {
	Nonce        string `json:"nonce"`
	Path         string `json:"path"`
	CheckpointID int64  `json:"checkpointId"`
	// TimeMs is when it completed, in Unix milliseconds.
	TimeMs int64  `json:"timeMs"`
	Error  string `json:"error"`
}

// LatestCheckpoint names the latest completed checkpoint.
type LatestCheckpoint struct {
	ID int64 `json:"id"`
	// Path is the checkpoint's directory URL (…/chk-<id>/).
	Path string `json:"path"`
	// TimeMs is when it completed, in Unix milliseconds.
	TimeMs int64 `json:"timeMs"`
}
