// Command crdcheck checks generated CRDs the way kube-apiserver does, without
// a cluster:
//
//  1. the CRD itself: ValidateCustomResourceDefinition, the same static
//     validation the apiserver runs on create (structural schema, defaults,
//     list types, CEL compilation and the CEL cost budgets: 10M per rule,
//     100M for the whole CRD). It also prints the estimated cost of every
//     x-kubernetes-validations rule, so a rule close to the budget shows.
//  2. test objects: each YAML file under -valid must be admitted, each under
//     -invalid must be rejected. An object goes through the same steps as a
//     create request: pruning (unknown fields are reported as errors here, as
//     kubectl's strict field validation would), defaulting, OpenAPI schema
//     validation, list-type checks and the CEL rules with the runtime budget.
//     An invalid file names the error it expects in a comment line
//     "# expect: <substring of the error>".
//
// It lives in its own Go module so the apiserver libraries it needs stay out
// of the main module's go.mod. Run it through make:
//
//	make -f Makefile.codegen.mk verify-crd
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// version is one served version of one CRD, ready to admit objects.
type version struct {
	gvk        string // group/version, Kind
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaCreateValidator
	cel        *cel.Validator
}

func main() {
	var crds multiFlag
	flag.Var(&crds, "crd", "CRD YAML file (repeatable)")
	validDir := flag.String("valid", "", "directory of objects that must be admitted")
	invalidDir := flag.String("invalid", "", "directory of objects that must be rejected")
	quiet := flag.Bool("q", false, "do not print the CEL cost report")
	klog.InitFlags(nil) // -v=2 logs why a messageExpression failed
	flag.Parse()
	if len(crds) == 0 {
		fail("no -crd given")
	}

	versions := map[string]*version{}
	for _, path := range crds {
		for k, v := range checkCRD(path, !*quiet) {
			versions[k] = v
		}
	}

	failed := false
	for _, dir := range []struct {
		path  string
		valid bool
	}{{*validDir, true}, {*invalidDir, false}} {
		if dir.path == "" {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir.path, "*.yaml"))
		if err != nil {
			fail(err.Error())
		}
		if len(files) == 0 {
			fail("no *.yaml under " + dir.path)
		}
		for _, f := range files {
			if !checkObject(f, dir.valid, versions) {
				failed = true
			}
		}
	}
	if failed {
		fail("some objects were not judged as expected")
	}
	fmt.Println("crdcheck: OK")
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "crdcheck: "+msg)
	os.Exit(1)
}

// checkCRD validates one CRD as the apiserver would on create and returns its
// served versions keyed by "apiVersion, Kind".
func checkCRD(path string, report bool) map[string]*version {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err.Error())
	}
	scheme := runtime.NewScheme()
	install.Install(scheme)
	// The universal decoder applies v1 defaults and converts to the internal
	// type, as the apiserver does before validating.
	obj, _, err := serializer.NewCodecFactory(scheme).UniversalDecoder(apiextensions.SchemeGroupVersion).Decode(data, nil, nil)
	if err != nil {
		fail(fmt.Sprintf("%s: %v", path, err))
	}
	crd, ok := obj.(*apiextensions.CustomResourceDefinition)
	if !ok {
		fail(fmt.Sprintf("%s: not a CustomResourceDefinition but %T", path, obj))
	}
	// PrepareForCreate of the CRD registry sets storedVersions.
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			crd.Status.StoredVersions = []string{v.Name}
		}
	}
	out := map[string]*version{}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		// The internal type keeps a schema shared by every version in
		// spec.validation instead of in each version.
		validation := v.Schema
		if validation == nil {
			validation = crd.Spec.Validation
		}
		if validation == nil || validation.OpenAPIV3Schema == nil {
			fail(fmt.Sprintf("%s: %s: no schema", path, v.Name))
		}
		props := validation.OpenAPIV3Schema
		s, err := structuralschema.NewStructural(props)
		if err != nil {
			fail(fmt.Sprintf("%s: %s: %v", path, v.Name, err))
		}
		sv, _, err := apiservervalidation.NewSchemaValidator(props)
		if err != nil {
			fail(fmt.Sprintf("%s: %s: %v", path, v.Name, err))
		}
		if report {
			reportCosts(fmt.Sprintf("%s %s", crd.Name, v.Name), s)
		}
		key := crd.Spec.Group + "/" + v.Name + ", " + crd.Spec.Names.Kind
		out[key] = &version{gvk: key, structural: s, schema: sv, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}
	}
	if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), crd); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "crdcheck: %s: %v\n", path, e)
		}
		fail(path + ": the apiserver would reject this CRD")
	}
	fmt.Printf("crdcheck: %s: CRD %s accepted (%d bytes)\n", path, crd.Name, len(data))
	return out
}

// ruleCost is the estimated cost of one rule as the apiserver computes it:
// the cost of one evaluation times how many times it can run (the product of
// maxItems/maxProperties of the lists and maps above it).
type ruleCost struct {
	path        string
	rule        string
	once        uint64
	cardinality string
	total       uint64
}

func reportCosts(name string, root *structuralschema.Structural) {
	var costs []ruleCost
	envSet := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	var walk func(s *structuralschema.Structural, path string, card uint64, bounded bool, isRoot bool)
	walk = func(s *structuralschema.Structural, path string, card uint64, bounded bool, isRoot bool) {
		if len(s.XValidations) > 0 {
			results, err := cel.Compile(s, model.SchemaDeclType(s, isRoot), celconfig.PerCallLimit, envSet, cel.NewExpressionsEnvLoader())
			if err != nil {
				fmt.Printf("  %s: cannot compile: %v\n", path, err)
			}
			for i, r := range results {
				if r.Error != nil {
					fmt.Printf("  %s: rule %d does not compile: %v\n", path, i, r.Error.Detail)
				}
				c := ruleCost{path: path, rule: s.XValidations[i].Rule, once: r.MaxCost, cardinality: fmt.Sprint(card)}
				n := card
				if !bounded {
					n = r.MaxCardinality
					c.cardinality = fmt.Sprintf("~%d (unbounded)", n)
				}
				// The apiserver adds a messageExpression's cost to the rule's.
				c.once += r.MessageExpressionMaxCost
				c.total = mul(c.once, n)
				costs = append(costs, c)
			}
		}
		for _, k := range sortedKeys(s.Properties) {
			p := s.Properties[k]
			walk(&p, path+"."+k, card, bounded, false)
		}
		child := func(max *int64) (uint64, bool) {
			if max == nil || !bounded {
				return card, false
			}
			return mul(card, uint64(*max)), true
		}
		if s.Items != nil {
			var max *int64
			if s.ValueValidation != nil {
				max = s.ValueValidation.MaxItems
			}
			c, b := child(max)
			walk(s.Items, path+"[*]", c, b, false)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Structural != nil {
			var max *int64
			if s.ValueValidation != nil {
				max = s.ValueValidation.MaxProperties
			}
			c, b := child(max)
			walk(s.AdditionalProperties.Structural, path+"[*]", c, b, false)
		}
	}
	walk(root, "", 1, true, true)

	var total uint64
	fmt.Printf("crdcheck: %s: estimated CEL cost per rule (limits: %d per rule, %d per CRD)\n",
		name, apiextensionsvalidation.StaticEstimatedCostLimit, apiextensionsvalidation.StaticEstimatedCRDCostLimit)
	for _, c := range costs {
		total += c.total
		rule := c.rule
		if len(rule) > 70 {
			rule = rule[:67] + "..."
		}
		fmt.Printf("  %12d = %9d x %-10s %s: %s\n", c.total, c.once, c.cardinality, c.path, rule)
	}
	fmt.Printf("  %12d total (%.2f%% of the CRD budget)\n", total, 100*float64(total)/float64(apiextensionsvalidation.StaticEstimatedCRDCostLimit))
}

func mul(a, b uint64) uint64 {
	if a != 0 && b > ^uint64(0)/a {
		return ^uint64(0)
	}
	return a * b
}

func sortedKeys(m map[string]structuralschema.Structural) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkObject admits one object as a create request would and reports
// whether the outcome is the expected one.
func checkObject(path string, wantValid bool, versions map[string]*version) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err.Error())
	}
	expect := expectation(data)
	if !wantValid && expect == "" {
		fmt.Printf("FAIL %s: an invalid object needs a '# expect: <error substring>' line\n", path)
		return false
	}
	errs := admit(data, versions)
	got := errs.ToAggregate()
	switch {
	case wantValid && got == nil:
		fmt.Printf("ok   %s: admitted\n", path)
		return true
	case wantValid:
		fmt.Printf("FAIL %s: rejected: %v\n", path, got)
		return false
	case got == nil:
		fmt.Printf("FAIL %s: admitted, want an error containing %q\n", path, expect)
		return false
	case !strings.Contains(got.Error(), expect):
		fmt.Printf("FAIL %s: rejected with %v, want an error containing %q\n", path, got, expect)
		return false
	default:
		fmt.Printf("ok   %s: rejected: %v\n", path, got)
		return true
	}
}

func expectation(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "# expect:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

func admit(data []byte, versions map[string]*version) field.ErrorList {
	// Decode as the apiserver does: integers become int64, not float64.
	var obj map[string]interface{}
	js, err := yaml.YAMLToJSON(data)
	if err == nil {
		err = utiljson.Unmarshal(js, &obj)
	}
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath(""), "", err.Error())}
	}
	key := fmt.Sprintf("%v, %v", obj["apiVersion"], obj["kind"])
	v, ok := versions[key]
	if !ok {
		return field.ErrorList{field.Invalid(field.NewPath("apiVersion"), key, "no CRD serves this apiVersion and kind")}
	}
	var errs field.ErrorList
	// Pruning: the apiserver drops unknown fields silently; kubectl's
	// strict field validation (the default) rejects them. Reject here too
	// so a typo in a test object does not pass unnoticed.
	pruned := structuralpruning.PruneWithOptions(obj, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range pruned {
		if strings.HasPrefix(p, "metadata.") {
			continue
		}
		errs = append(errs, field.Forbidden(field.NewPath(p), "unknown field"))
	}
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	structuraldefaulting.Default(obj, v.structural)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, v.schema)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	if len(errs) > 0 {
		// The apiserver skips CEL when the schema already failed.
		return errs
	}
	celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}
