package v1alpha1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdPath is the CRD that `make manifests` generates from this package.
var crdPath = filepath.Join("..", "..", "config", "crd", "bases", "flinkjob.io_flinkjobs.yaml")

// maxCRDBytes keeps the CRD well below the 256 KiB that client-side
// `kubectl apply` can store in its last-applied annotation.
const maxCRDBytes = 200 * 1024

func loadCRD(t *testing.T) (*apiextensionsv1.CustomResourceDefinition, int) {
	t.Helper()
	data, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatalf("read CRD (run make -f Makefile.codegen.mk manifests): %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatalf("decode CRD: %v", err)
	}
	return &crd, len(data)
}

func TestCRDShape(t *testing.T) {
	crd, size := loadCRD(t)

	if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
		t.Errorf("apiVersion/kind = %s %s", crd.APIVersion, crd.Kind)
	}
	if crd.Name != "flinkjobs.flinkjob.io" || crd.Spec.Group != GroupVersion.Group {
		t.Errorf("name/group = %s %s", crd.Name, crd.Spec.Group)
	}
	n := crd.Spec.Names
	if n.Kind != "FlinkJob" || n.ListKind != "FlinkJobList" || n.Plural != "flinkjobs" || n.Singular != "flinkjob" {
		t.Errorf("names = %+v", n)
	}
	if len(n.ShortNames) != 1 || n.ShortNames[0] != "fj" {
		t.Errorf("shortNames = %v", n.ShortNames)
	}
	if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("scope = %s", crd.Spec.Scope)
	}
	if size > maxCRDBytes {
		t.Errorf("CRD is %d bytes, more than %d", size, maxCRDBytes)
	}

	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("versions = %d, want 1", len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	if v.Name != GroupVersion.Version || !v.Served || !v.Storage {
		t.Errorf("version %s served=%v storage=%v", v.Name, v.Served, v.Storage)
	}
	if v.Subresources == nil || v.Subresources.Status == nil {
		t.Error("status subresource missing")
	}

	root := v.Schema.OpenAPIV3Schema
	cols := map[string]string{}
	for _, c := range v.AdditionalPrinterColumns {
		cols[c.Name] = c.JSONPath
		if !strings.HasPrefix(c.JSONPath, ".metadata.") {
			if _, ok := schemaAt(root, c.JSONPath); !ok {
				t.Errorf("printer column %s: %s is not in the schema", c.Name, c.JSONPath)
			}
		}
	}
	for name, path := range map[string]string{
		"Mode":   ".status.resolvedMode",
		"Phase":  ".status.phase",
		"Stages": ".status.stagesSummary",
		"Age":    ".metadata.creationTimestamp",
	} {
		if cols[name] != path {
			t.Errorf("printer column %s = %q, want %q", name, cols[name], path)
		}
	}
}

func TestCRDSchema(t *testing.T) {
	crd, _ := loadCRD(t)
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema

	// The embedded dataflow fields are top-level spec fields, next to the
	// fields that say how to run the job.
	for _, p := range []string{
		".spec.runtimeMode", ".spec.parallelism", ".spec.batchProcessingTime", ".spec.steps",
		".spec.image", ".spec.imagePullPolicy", ".spec.resources", ".spec.podTemplate",
		".spec.storage.s3.endpoint", ".spec.storage.s3.tls.caSecretRef.key",
		".spec.storage.s3.credentialsSecretRef.secretKeyKey",
		".spec.restartStrategy.backoffMultiplier", ".spec.suspend", ".spec.ttlSecondsAfterFinished",
		".status.stages", ".status.stagesDone", ".status.stagesTotal", ".status.conditions",
		".status.observedGeneration", ".status.startTime", ".status.finishTime", ".status.message",
	} {
		s, ok := schemaAt(root, p)
		if !ok {
			t.Errorf("%s missing from the schema", p)
			continue
		}
		if s.Description == "" {
			t.Errorf("%s has no description (kubectl explain shows it)", p)
		}
	}

	// Credentials only through a Secret: nothing in s3 takes a key inline.
	s3, _ := schemaAt(root, ".spec.storage.s3")
	for name := range s3.Properties {
		l := strings.ToLower(name)
		if (strings.Contains(l, "key") || strings.Contains(l, "password") || strings.Contains(l, "secret")) && name != "credentialsSecretRef" {
			t.Errorf("s3.%s looks like an inline credential", name)
		}
	}

	steps, _ := schemaAt(root, ".spec.steps")
	if steps.MaxItems == nil || *steps.MaxItems != 256 || steps.Items == nil {
		t.Errorf("steps must be bounded (CEL cost): %+v", steps.MaxItems)
	}
	spec, _ := schemaAt(root, ".spec")
	if !hasRule(spec, "exists_one(t, t.name == s.name)") {
		t.Error("spec lacks the unique step names rule")
	}
	if !hasRule(spec, "self.runtimeMode != 'BATCH'") {
		t.Error("spec lacks the BATCH bounded sources rule")
	}
	conds, _ := schemaAt(root, ".status.conditions")
	if conds.XListType == nil || *conds.XListType != "map" || len(conds.XListMapKeys) != 1 || conds.XListMapKeys[0] != "type" {
		t.Errorf("conditions list type = %v %v", conds.XListType, conds.XListMapKeys)
	}
	mode, _ := schemaAt(root, ".spec.runtimeMode")
	if mode.Default == nil || string(mode.Default.Raw) != `"STREAMING"` || len(mode.Enum) != 3 {
		t.Errorf("runtimeMode default/enum = %v %v", mode.Default, mode.Enum)
	}
	creds, _ := schemaAt(root, ".spec.storage.s3.credentialsSecretRef")
	for key, want := range map[string]string{"accessKeyKey": `"accessKey"`, "secretKeyKey": `"secretKey"`} {
		if d := creds.Properties[key].Default; d == nil || string(d.Raw) != want {
			t.Errorf("credentialsSecretRef.%s default = %v, want %s", key, d, want)
		}
	}
	// Elements are any JSON value: no type, unknown fields kept.
	el, ok := schemaAt(root, ".spec.steps[].source.elements[]")
	if !ok || el.Type != "" || el.XPreserveUnknownFields == nil || !*el.XPreserveUnknownFields {
		t.Errorf("elements items = %+v", el)
	}
}

func hasRule(s apiextensionsv1.JSONSchemaProps, substr string) bool {
	for _, r := range s.XValidations {
		if strings.Contains(r.Rule, substr) {
			return true
		}
	}
	return false
}

// schemaAt follows a JSONPath-like path (".a.b", "[]" for list items).
func schemaAt(root *apiextensionsv1.JSONSchemaProps, path string) (apiextensionsv1.JSONSchemaProps, bool) {
	s := *root
	for _, part := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		name, items := strings.CutSuffix(part, "[]")
		p, ok := s.Properties[name]
		if !ok {
			return s, false
		}
		s = p
		if items {
			if s.Items == nil || s.Items.Schema == nil {
				return s, false
			}
			s = *s.Items.Schema
		}
	}
	return s, true
}
