# Makefile.codegen.mk: code generation with controller-gen (included by the
# top-level Makefile; also usable alone: make -f Makefile.codegen.mk generate).
#
#   controller-gen   install the pinned controller-gen into bin/ (hack/tools.sh)
#   generate         deep copy functions for ./api/... and ./engine/spec/...
#   manifests        the FlinkJob CRD into config/crd/bases
#   verify-codegen   regenerate and fail if the committed output differs
#   verify-crd       check the CRD as kube-apiserver would (structural schema,
#                    CEL compilation and cost budget) and admit config/crd/testdata

CODEGEN_ROOT   := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CODEGEN_BIN    ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(CODEGEN_BIN)/controller-gen

# Packages with +kubebuilder:object:generate markers, and the API packages
# that define CRDs.
CODEGEN_OBJECT_PATHS ?= ./api/... ./engine/spec/...
CODEGEN_CRD_PATHS    ?= ./api/...
CODEGEN_RBAC_PATHS   ?= ./controllers/... ./cmd/manager/...
CRD_OUTPUT_DIR       ?= config/crd/bases

.PHONY: controller-gen generate manifests verify-codegen verify-crd

controller-gen: ## Install the pinned controller-gen into bin/ (skipped when current).
	@TOOLS_BIN_DIR="$(CODEGEN_BIN)" $(CODEGEN_ROOT)/hack/tools.sh controller-gen

generate: controller-gen ## Generate deep copy functions (zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt $(addprefix paths=,$(CODEGEN_OBJECT_PATHS))

manifests: controller-gen ## Generate the CRD YAML into config/crd/bases.
	@mkdir -p $(CRD_OUTPUT_DIR)
	@rm -f $(CRD_OUTPUT_DIR)/*.yaml
	$(CONTROLLER_GEN) crd $(addprefix paths=,$(CODEGEN_CRD_PATHS)) output:crd:artifacts:config=$(CRD_OUTPUT_DIR)
	$(CONTROLLER_GEN) rbac:roleName=manager-role webhook $(addprefix paths=,$(CODEGEN_RBAC_PATHS)) \
		output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	@# The Helm chart ships the same CRDs and RBAC rules.
	@rm -f charts/flinkjob-operator/crds/*.yaml
	cp $(CRD_OUTPUT_DIR)/*.yaml charts/flinkjob-operator/crds/
	cp config/rbac/role.yaml charts/flinkjob-operator/rbac/role.yaml

verify-codegen: controller-gen ## Fail if generated files are stale (works on untracked files too).
	@MAKE="$(MAKE)" CODEGEN_MAKEFILE="$(CODEGEN_ROOT)/Makefile.codegen.mk" \
		$(CODEGEN_ROOT)/hack/verify-codegen.sh

verify-crd: ## Validate the CRD like kube-apiserver (incl. CEL cost) and admit the test objects.
	cd $(CODEGEN_ROOT)/hack/crdcheck && go run . \
		$(addprefix -crd=,$(abspath $(wildcard $(CRD_OUTPUT_DIR)/*.yaml))) \
		-valid=$(abspath config/crd/testdata/valid) -invalid=$(abspath config/crd/testdata/invalid)
