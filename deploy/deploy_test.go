// Package deploy_test checks the deployment files under deploy/: every YAML file parses, the
// Kubernetes StatefulSet keeps its single-writer and hardening settings, the tokenvault config
// files use only real serve flags (and TLS wherever serve requires it), the Dockerfile matches
// the module, systemd accepts the unit, and the monitoring files (Prometheus rules, Grafana
// dashboard) query only metrics and labels that a running server really exports.
package deploy_test

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
)

// serveFlags are the flags of "tokenvault serve" (from "tokenvault serve --help"), the only
// keys a config file may hold. The file is applied to every command, so client flags would be
// rejected by serve as unknown settings.
var serveFlags = []string{
	"data", "dev", "dev-root-token", "grpc-addr", "http-addr", "vendor-addr",
	"kek-file", "kek-uri", "log-level", "rotate-after", "rotate-after-records", "erasure-log", "audit-retention",
	"alert-webhook-url", "alert-webhook-secret", "alert-vendor-rate", "alert-grant-rate", "alert-denials",
	"tls-cert", "tls-key", "vendor-tls-cert", "vendor-tls-key", "vendor-client-ca",
	"metrics-addr", "http-max-body", "vendor-max-body", "grpc-max-recv", "read-header-timeout",
	"read-timeout", "write-timeout", "idle-timeout", "max-conns",
}

// configFiles are the tokenvault config files (YAML, keys are serve flags) under deploy/.
func configFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("config", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("systemd", "config.yaml"), filepath.Join("kubernetes", "base", "config.yaml"),
		filepath.Join("kubernetes", "overlays", "postgres", "config.yaml"))
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("config file: %v", err)
		}
	}
	return files
}

// yamlFiles returns every *.yaml and *.yml file under deploy/.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML files found under deploy/")
	}
	return files
}

// decodeAll decodes every document of a (multi-document) YAML file into nodes.
func decodeAll(p string) ([]*yaml.Node, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, &n)
	}
}

func TestYAMLParses(t *testing.T) {
	for _, p := range yamlFiles(t) {
		docs, err := decodeAll(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML documents", p)
		}
	}
}

// Minimal shapes of the Kubernetes objects the checks read.
type (
	k8sObject struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	secContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	}
	probe struct {
		HTTPGet *struct {
			Path   string `yaml:"path"`
			Port   any    `yaml:"port"`
			Scheme string `yaml:"scheme"`
		} `yaml:"httpGet"`
	}
	container struct {
		Name            string     `yaml:"name"`
		Image           string     `yaml:"image"`
		Args            []string   `yaml:"args"`
		Command         []string   `yaml:"command"`
		SecurityContext secContext `yaml:"securityContext"`
		LivenessProbe   *probe     `yaml:"livenessProbe"`
		ReadinessProbe  *probe     `yaml:"readinessProbe"`
		StartupProbe    *probe     `yaml:"startupProbe"`
		Ports           []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
	}
	pvcTemplate struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	statefulSet struct {
		Spec struct {
			Replicas       *int   `yaml:"replicas"`
			ServiceName    string `yaml:"serviceName"`
			UpdateStrategy struct {
				Type string `yaml:"type"`
			} `yaml:"updateStrategy"`
			Template struct {
				Spec struct {
					SecurityContext secContext  `yaml:"securityContext"`
					InitContainers  []container `yaml:"initContainers"`
					Containers      []container `yaml:"containers"`
					Volumes         []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
			VolumeClaimTemplates []pvcTemplate `yaml:"volumeClaimTemplates"`
		} `yaml:"spec"`
	}
)

// kubeObjects returns every document of deploy/kubernetes/base/*.yaml with its kind and name.
func kubeObjects(t *testing.T) map[string]*yaml.Node {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "base", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]*yaml.Node{}
	for _, f := range files {
		if filepath.Base(f) == "config.yaml" || filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		docs, err := decodeAll(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			var o k8sObject
			if err := d.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: a document without kind or metadata.name", f)
				continue
			}
			objs[o.Kind+"/"+o.Metadata.Name] = d
		}
	}
	return objs
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

func TestStatefulSet(t *testing.T) {
	objs := kubeObjects(t)
	n, ok := objs["StatefulSet/tokenvault"]
	if !ok {
		t.Fatal("deploy/kubernetes has no StatefulSet named tokenvault")
	}
	var ss statefulSet
	if err := n.Decode(&ss); err != nil {
		t.Fatal(err)
	}
	spec := ss.Spec
	if spec.Replicas == nil {
		t.Error("replicas is not set (the default is 1, but say it: bbolt has a single writer)")
	} else if *spec.Replicas != 1 {
		t.Errorf("replicas = %d, want exactly 1 (bbolt has a single writer)", *spec.Replicas)
	}
	if _, ok := objs["Service/"+spec.ServiceName]; !ok {
		t.Errorf("serviceName %q names no Service in deploy/kubernetes", spec.ServiceName)
	}
	pod := spec.Template.Spec
	if !isTrue(pod.SecurityContext.RunAsNonRoot) {
		t.Error("pod securityContext.runAsNonRoot must be true")
	}
	if pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Error("pod securityContext.runAsUser must be set to a non-root uid")
	}
	if pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Error("pod seccompProfile must be RuntimeDefault")
	}
	all := append(append([]container{}, pod.InitContainers...), pod.Containers...)
	for _, c := range all {
		sc := c.SecurityContext
		if !isTrue(sc.RunAsNonRoot) && !isTrue(pod.SecurityContext.RunAsNonRoot) {
			t.Errorf("container %s: runAsNonRoot must be true", c.Name)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
		}
		if !isFalse(sc.AllowPrivilegeEscalation) {
			t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: capabilities must drop ALL", c.Name)
		}
		if sc.SeccompProfile.Type != "RuntimeDefault" && pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("container %s: seccompProfile must be RuntimeDefault", c.Name)
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %s: set memory requests and limits", c.Name)
		}
	}

	var tv *container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "tokenvault" {
			tv = &pod.Containers[i]
		}
	}
	if tv == nil {
		t.Fatal("no container named tokenvault")
	}
	httpPort := -1
	for _, p := range tv.Ports {
		if p.Name == "http" {
			httpPort = p.ContainerPort
		}
	}
	probes := map[string]*probe{"liveness": tv.LivenessProbe, "readiness": tv.ReadinessProbe}
	if tv.StartupProbe != nil {
		probes["startup"] = tv.StartupProbe
	}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("tokenvault container: %s probe must be an httpGet", name)
			continue
		}
		want := "/livez" // a sealed vault must not be restarted
		if name == "readiness" {
			want = "/healthz" // ...but must leave the Services
		}
		if p.HTTPGet.Path != want {
			t.Errorf("%s probe path = %q, want %s", name, p.HTTPGet.Path, want)
		}
		if port := fmt.Sprint(p.HTTPGet.Port); port != "http" && port != fmt.Sprint(httpPort) {
			t.Errorf("%s probe port = %v, want the internal HTTP port (http, %d)", name, p.HTTPGet.Port, httpPort)
		}
	}

	// The config the pod runs with: its settings must point into the pod's volumes, and the
	// probes' scheme must match whether the HTTP listener has TLS.
	cfg := readConfig(t, filepath.Join("kubernetes", "base", "config.yaml"))
	mounts := map[string]string{}
	for _, m := range tv.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	under := func(p string) (string, bool) {
		for mp, name := range mounts {
			if p == mp || strings.HasPrefix(p, mp+"/") {
				return name, true
			}
		}
		return "", false
	}
	i := slices.Index(tv.Args, "--config")
	if i < 0 || i+1 >= len(tv.Args) {
		t.Fatalf("tokenvault container args %q: want serve --config FILE", tv.Args)
	}
	vol, ok := under(tv.Args[i+1])
	if !ok {
		t.Errorf("--config %s is not in a mounted volume", tv.Args[i+1])
	}
	for _, v := range pod.Volumes {
		if v.Name == vol && (v.ConfigMap == nil || v.ConfigMap.Name != "tokenvault-config") {
			t.Errorf("--config %s: volume %s is not the tokenvault-config ConfigMap", tv.Args[i+1], vol)
		}
	}
	for _, k := range []string{"data", "kek-file", "tls-cert", "tls-key", "vendor-tls-cert", "vendor-tls-key", "vendor-client-ca"} {
		if p := cfg[k]; p != "" {
			if _, ok := under(p); !ok {
				t.Errorf("kubernetes/base/config.yaml: %s %s is not in a volume mounted by the tokenvault container", k, p)
			}
		}
	}
	if name, _ := under(cfg["data"]); !slices.ContainsFunc(spec.VolumeClaimTemplates, func(v pvcTemplate) bool { return v.Metadata.Name == name }) {
		t.Errorf("kubernetes/base/config.yaml: data %s is not on the persistent volume claim", cfg["data"])
	}
	wantScheme := "HTTP"
	if cfg["tls-cert"] != "" {
		wantScheme = "HTTPS"
	}
	for name, p := range probes {
		if p != nil && p.HTTPGet != nil && strings.ToUpper(cmp.Or(p.HTTPGet.Scheme, "HTTP")) != wantScheme {
			t.Errorf("%s probe scheme = %q, want %s (the HTTP listener's TLS setting)", name, p.HTTPGet.Scheme, wantScheme)
		}
	}
}

func TestKustomization(t *testing.T) {
	var k struct {
		Resources          []string `yaml:"resources"`
		ConfigMapGenerator []struct {
			Name  string   `yaml:"name"`
			Files []string `yaml:"files"`
		} `yaml:"configMapGenerator"`
	}
	b, err := os.ReadFile(filepath.Join("kubernetes", "base", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", "base", r)); err != nil {
			t.Errorf("kustomization resource: %v", err)
		}
	}
	listed, _ := filepath.Glob(filepath.Join("kubernetes", "base", "*.yaml"))
	for _, f := range listed {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && base != "config.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("kubernetes/base/%s is not listed in kustomization.yaml resources", base)
		}
	}
	found := false
	for _, g := range k.ConfigMapGenerator {
		if g.Name == "tokenvault-config" && slices.Contains(g.Files, "config.yaml") {
			found = true
		}
	}
	if !found {
		t.Error("kustomization.yaml must generate ConfigMap tokenvault-config from config.yaml")
	}

	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl not installed: not rendering the kustomization")
		return
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/kubernetes: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("kind: StatefulSet")) {
		t.Errorf("kubectl kustomize output has no StatefulSet:\n%s", out)
	}
}

// readConfig reads a tokenvault config file and checks that it holds only serve flags with
// scalar values (serve turns a list into the text "[a b]").
func readConfig(t *testing.T, p string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	cfg := map[string]string{}
	for k, v := range raw {
		if !slices.Contains(serveFlags, k) {
			t.Errorf("%s: %q is not a serve flag (serve --config rejects it)", p, k)
		}
		switch v.(type) {
		case string, bool, int, float64:
			cfg[k] = fmt.Sprint(v)
		default:
			t.Errorf("%s: %s must be a single value, not %T", p, k, v)
		}
	}
	return cfg
}

func TestConfigFiles(t *testing.T) {
	for _, p := range configFiles(t) {
		cfg := readConfig(t, p)
		if cfg["dev"] == "true" || cfg["dev-root-token"] != "" {
			t.Errorf("%s: a deployment config must not use dev mode", p)
		}
		if cfg["data"] == "" && p != postgresConfig {
			t.Errorf("%s: data is required outside dev mode (the PostgreSQL overlay's store comes from TOKENVAULT_STORE instead)", p)
		}
		if cfg["kek-file"] == "" && cfg["kek-uri"] == "" {
			t.Errorf("%s: a KEK is required outside dev mode (kek-file or kek-uri)", p)
		}
		// The server's own rules: the TLS files come in complete sets, and a listener without
		// TLS must be on loopback (an address left out is serve's default, which is loopback).
		internal := server.TLSFiles{Cert: cfg["tls-cert"], Key: cfg["tls-key"]}
		vendor := server.TLSFiles{Cert: cfg["vendor-tls-cert"], Key: cfg["vendor-tls-key"], ClientCA: cfg["vendor-client-ca"]}
		for _, f := range []server.TLSFiles{internal, vendor} {
			if err := f.Check(); err != nil {
				t.Errorf("%s: %+v: %v", p, f, err)
			}
		}
		sc := server.Config{GRPCAddr: cfg["grpc-addr"], HTTPAddr: cfg["http-addr"], VendorAddr: cfg["vendor-addr"]}
		if internal.Cert != "" {
			sc.TLS = &tls.Config{} // the files are read by serve; having them is what counts here
		}
		if vendor.Cert != "" {
			sc.VendorTLS = &tls.Config{}
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		for _, k := range []string{"data", "kek-file", "tls-cert", "tls-key", "vendor-tls-cert", "vendor-tls-key", "vendor-client-ca"} {
			if v := cfg[k]; v != "" && !path.IsAbs(v) {
				t.Errorf("%s: %s should be an absolute path, got %q", p, k, v)
			}
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	gomod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if !regexp.MustCompile(`(?m)^FROM golang:` + regexp.QuoteMeta(m[1]) + `\b`).MatchString(df) {
		t.Errorf("the build stage must use golang:%s (go.mod says go %s)", m[1], m[1])
	}
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/tokenvault", "-X main.version=",
		`ENTRYPOINT ["/tokenvault"]`, "USER 65532",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile: missing %q", want)
		}
	}
	cmd := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindStringSubmatch(df)
	if cmd == nil {
		t.Fatal("Dockerfile: no exec-form CMD")
	}
	var args []string
	if err := yaml.Unmarshal([]byte(cmd[1]), &args); err != nil {
		t.Fatalf("Dockerfile CMD: %v", err)
	}
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("Dockerfile CMD %q: want serve ...", args)
	}
	for _, a := range args[1:] {
		if f, ok := strings.CutPrefix(a, "--"); ok {
			f, _, _ = strings.Cut(f, "=")
			if !slices.Contains(serveFlags, f) && f != "config" {
				t.Errorf("Dockerfile CMD: --%s is not a serve flag", f)
			}
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	unitPath := filepath.Join("systemd", "tokenvault.service")
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/tokenvault serve --config /etc/tokenvault/config.yaml",
		"User=tokenvault", "StateDirectory=tokenvault", "ReadWritePaths=/var/lib/tokenvault",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"NoNewPrivileges=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
		"ProtectKernelLogs=yes", "ProtectControlGroups=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces=yes",
		"LockPersonality=yes", "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
		"SystemCallArchitectures=native", "CapabilityBoundingSet=\n", "UMask=0077",
		"KillSignal=SIGTERM", "TimeoutStopSec=",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("%s: missing %q", unitPath, strings.TrimSpace(want))
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd): not verifying the unit")
	}
	// verify also checks that ExecStart's binary exists: point it at an executable that does
	// (this test binary); everything else is verified as written.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit = strings.ReplaceAll(unit, "ExecStart=/usr/local/bin/tokenvault ", "ExecStart="+self+" ")
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tokenvault.service")
	if err := os.WriteFile(tmp, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	// Messages about our unit name it (path:line: ... or tokenvault.service: ...); others are
	// about the host's units (dependencies such as multi-user.target) and are not ours.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, tmp) || strings.Contains(line, "tokenvault.service") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	} else if len(out) > 0 {
		t.Logf("systemd-analyze verify (messages about other units):\n%s", out)
	}
}

// Monitoring: deploy/monitoring/prometheus-rules.yaml (with its promtool unit tests in
// prometheus-rules.test.yaml) and deploy/monitoring/grafana-dashboard.json.

var (
	rulesFile     = filepath.Join("monitoring", "prometheus-rules.yaml")
	rulesTestFile = filepath.Join("monitoring", "prometheus-rules.test.yaml")
	dashboardFile = filepath.Join("monitoring", "grafana-dashboard.json")
)

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(rf.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesFile)
	}
	return rf
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ X, Y, W, H int } `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// headingAnchors returns the GitHub anchors of a Markdown file's headings.
func headingAnchors(t *testing.T, p string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var a strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				a.WriteRune('-')
			case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
				a.WriteRune(r)
			}
		}
		anchors[a.String()] = true
	}
	return anchors
}

func TestPrometheusRules(t *testing.T) {
	rf := readRules(t)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("%s: group %q: a name and rules are required", rulesFile, g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Record != "" {
				t.Errorf("%s: group %s: only alerting rules are expected (alert %q, record %q)", rulesFile, g.Name, r.Alert, r.Record)
				continue
			}
			if seen[r.Alert] {
				t.Errorf("%s: alert %s defined twice", rulesFile, r.Alert)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: %s: no expr", rulesFile, r.Alert)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("%s: %s: labels.severity = %q, want critical, warning or info", rulesFile, r.Alert, sev)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: %s: annotations.%s is missing", rulesFile, r.Alert, a)
				}
			}
			// The runbook is a page of docs/ (and a heading in it), named in the description too.
			rb := r.Annotations["runbook"]
			page, anchor, _ := strings.Cut(rb, "#")
			if !strings.HasPrefix(page, "docs/") || !strings.HasSuffix(page, ".md") {
				t.Errorf("%s: %s: runbook %q is not a page under docs/", rulesFile, r.Alert, rb)
				continue
			}
			if _, err := os.Stat(filepath.Join("..", page)); err != nil {
				t.Errorf("%s: %s: runbook: %v", rulesFile, r.Alert, err)
				continue
			}
			if anchor != "" && !headingAnchors(t, filepath.Join("..", page))[anchor] {
				t.Errorf("%s: %s: runbook %s: no heading with anchor #%s", rulesFile, r.Alert, page, anchor)
			}
			if !strings.Contains(r.Annotations["description"], page) {
				t.Errorf("%s: %s: the description should name the runbook page %s", rulesFile, r.Alert, page)
			}
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): not checking the rules with it")
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	if out, err := exec.Command(promtool, "test", "rules", rulesTestFile).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules %s: %v\n%s", rulesTestFile, err, out)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Error("the dashboard needs a title and a uid")
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want 36 or later (datasource references by uid)", d.SchemaVersion)
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			dsVar = "${" + v.Name + "}"
		}
	}
	if dsVar == "" {
		t.Fatal("no Prometheus datasource variable (templating: type datasource, query prometheus)")
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: a query without expr", p.Title)
			}
			if refs[tg.RefID] {
				t.Errorf("panel %q: refId %q used twice", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			ds := cmp.Or(tg.Datasource, p.Datasource)
			if ds == nil || ds.UID != dsVar {
				t.Errorf("panel %q: query %s must use the datasource variable %s", p.Title, tg.RefID, dsVar)
			}
		}
	}
}

// monitoringExprs returns every PromQL expression of the rules and the dashboard (panel
// queries and query variables), keyed by where it comes from.
func monitoringExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			exprs[rulesFile+": "+r.Alert] = r.Expr
		}
	}
	d := readDashboard(t)
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs[fmt.Sprintf("%s: panel %q query %s", dashboardFile, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query) // the older form: a bare string
		}
		exprs[fmt.Sprintf("%s: variable %s", dashboardFile, v.Name)] = q.Query + " " + v.Definition
	}
	return exprs
}

var (
	// The server's own metrics, and the Go runtime and process metrics it also exports.
	metricNameRE = regexp.MustCompile(`\b(?:tokenvault|process|go)_[a-z0-9_]+`)
	// Label names in grouping and matching clauses (by, without, on, ignoring, group_*) and in
	// selectors' matchers.
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	selectorRE = regexp.MustCompile(`\{([^{}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
)

// targetLabels are added by Prometheus at scrape time (or belong to histogram buckets).
var targetLabels = []string{"instance", "job", "le"}

// scrapeMetrics reads a /metrics page: every sample name, with the label names it carries.
// The internal listener's /metrics needs an admin or auditor credential: it sends the root's.
func scrapeMetrics(t *testing.T, url string) map[string]map[string]bool {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testenv.RootSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	names := map[string]map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		name := line[:end]
		if names[name] == nil {
			names[name] = map[string]bool{}
		}
		if line[end] == '{' {
			for _, m := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`).FindAllStringSubmatch(line[end:], -1) {
				names[name][m[1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// call POSTs a JSON body and decodes the JSON answer into out.
func call(t *testing.T, env *testenv.Env, url, secret, body string, out any) {
	t.Helper()
	code, b := env.Post(url, secret, body)
	if code != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d: %s", url, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, b)
		}
	}
}

// TestMonitoringMetricsExist runs a server, makes the calls that create every metric vector
// (a tokenize, a vendor reveal, a canary alert) and checks that each metric and label the
// rules and the dashboard query is on its /metrics page.
func TestMonitoringMetricsExist(t *testing.T) {
	// A real server (testenv: bbolt file, Tink keys, loopback listeners), as serve runs it.
	env := testenv.Start(t, testenv.DiscardLogs(), testenv.Configure(func(c *server.Config) { c.CheckpointInterval = 50 * time.Millisecond }))

	call(t, env, "/v1/tokens:tokenize", testenv.RootSecret,
		`{"items":[{"value":"4111111111111111","template":"pan","domain":"acme"}]}`, nil)
	var cred struct {
		Secret string `json:"secret"`
	}
	call(t, env, "/v1/credentials", testenv.RootSecret, `{"name":"acme-api","role":"vendor","vendor":"acme"}`, &cred)
	call(t, env, "/v1/grants", testenv.RootSecret,
		`{"grant":{"vendor":"acme","domains":["acme"],"templates":["pan"],"reveal":"REVEAL_MASKED","purpose":"refunds"},"ttl":"3600s"}`, nil)
	var canary struct {
		Token string `json:"token"`
	}
	call(t, env, "/v1/canaries", testenv.RootSecret, `{"domain":"acme","template":"pan","value":"4000000000000002","label":"deploy test"}`, &canary)
	// One vendor call: a reveal (the canary, which also fires the canary alert) and a denial.
	var res struct {
		Results []json.RawMessage `json:"results"`
	}
	call(t, env, env.VendorURL("/v1/tokens:detokenize"), cred.Secret,
		`{"items":[{"token":"`+canary.Token+`","domain":"acme"},{"token":"0000000000000000","domain":"acme"}],"purpose":"deploy test"}`, &res)
	if len(res.Results) != 2 {
		t.Fatalf("vendor detokenize: %d results, want 2", len(res.Results))
	}

	got := scrapeMetrics(t, env.URL("/metrics"))
	exprs := monitoringExprs(t)
	if len(exprs) == 0 {
		t.Fatal("no expressions found in the monitoring files")
	}
	used := 0
	for where, expr := range exprs {
		names := slices.Compact(slices.Sorted(slices.Values(metricNameRE.FindAllString(expr, -1))))
		if len(names) == 0 {
			t.Errorf("%s: the expression names no tokenvault metric: %s", where, expr)
		}
		labels := map[string]bool{}
		for _, n := range names {
			used++
			if got[n] == nil {
				t.Errorf("%s: metric %s is not exported by the server", where, n)
				continue
			}
			for l := range got[n] {
				labels[l] = true
			}
		}
		var want []string
		for _, m := range groupingRE.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					want = append(want, l)
				}
			}
		}
		for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
			for _, mm := range matcherRE.FindAllStringSubmatch(m[1], -1) {
				want = append(want, mm[1])
			}
		}
		for _, l := range want {
			if !labels[l] && !slices.Contains(targetLabels, l) {
				t.Errorf("%s: label %q is on none of the metrics %v the expression reads", where, l, names)
			}
		}
	}
	t.Logf("%d expressions, %d metric references checked against /metrics", len(exprs), used)
}

// TestInitPod: production serve refuses an uninitialised store, so deploy/kubernetes/init/pod.yaml
// runs `tokenvault init` once on the StatefulSet's volumes: the same paths as the server's
// config, the claims of pod tokenvault-0, the KEK copied as the StatefulSet copies it, and the
// same hardening.
func TestInitPod(t *testing.T) {
	docs, err := decodeAll(filepath.Join("kubernetes", "init", "pod.yaml"))
	if err != nil || len(docs) != 1 {
		t.Fatalf("kubernetes/init/pod.yaml: %v (%d documents)", err, len(docs))
	}
	var pod struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec struct {
			RestartPolicy   string      `yaml:"restartPolicy"`
			SecurityContext secContext  `yaml:"securityContext"`
			InitContainers  []container `yaml:"initContainers"`
			Containers      []container `yaml:"containers"`
			Volumes         []struct {
				Name string `yaml:"name"`
				PVC  *struct {
					ClaimName string `yaml:"claimName"`
				} `yaml:"persistentVolumeClaim"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	}
	if err := docs[0].Decode(&pod); err != nil {
		t.Fatal(err)
	}
	if pod.Kind != "Pod" || pod.Metadata.Namespace != "tokenvault" || pod.Spec.RestartPolicy != "Never" {
		t.Errorf("want a Pod in namespace tokenvault with restartPolicy Never, got %s in %q, %q", pod.Kind, pod.Metadata.Namespace, pod.Spec.RestartPolicy)
	}
	var ss statefulSet
	if err := kubeObjects(t)["StatefulSet/tokenvault"].Decode(&ss); err != nil {
		t.Fatal(err)
	}
	if !isTrue(pod.Spec.SecurityContext.RunAsNonRoot) || pod.Spec.SecurityContext.RunAsUser == nil ||
		*pod.Spec.SecurityContext.RunAsUser != *ss.Spec.Template.Spec.SecurityContext.RunAsUser {
		t.Error("the init pod must run as the StatefulSet's non-root user (it writes the store the server opens)")
	}
	for _, c := range append(append([]container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		sc := c.SecurityContext
		if !isTrue(sc.ReadOnlyRootFilesystem) || !isFalse(sc.AllowPrivilegeEscalation) || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: readOnlyRootFilesystem, no privilege escalation and drop ALL are required", c.Name)
		}
	}
	if len(pod.Spec.InitContainers) != 1 || len(ss.Spec.Template.Spec.InitContainers) != 1 ||
		!slices.Equal(pod.Spec.InitContainers[0].Command, ss.Spec.Template.Spec.InitContainers[0].Command) {
		t.Error("the init pod must copy the KEK exactly as the StatefulSet's init container does")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	cfg := readConfig(t, filepath.Join("kubernetes", "base", "config.yaml"))
	flag := func(name string) string {
		i := slices.Index(c.Args, name)
		if i < 0 || i+1 >= len(c.Args) {
			return ""
		}
		return c.Args[i+1]
	}
	if len(c.Args) == 0 || c.Args[0] != "init" || flag("--data") != cfg["data"] || flag("--kek-file") != cfg["kek-file"] {
		t.Errorf("init pod args %q: want init --data %s --kek-file %s (kubernetes/base/config.yaml)", c.Args, cfg["data"], cfg["kek-file"])
	}
	// Each mount is the StatefulSet's volume at the same path, and each claim is pod
	// tokenvault-0's claim of that volume.
	ssMounts := map[string]string{}
	for _, ctr := range ss.Spec.Template.Spec.Containers {
		if ctr.Name == "tokenvault" {
			for _, m := range ctr.VolumeMounts {
				ssMounts[m.Name] = m.MountPath
			}
		}
	}
	claims := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.PVC != nil {
			claims[v.Name] = v.PVC.ClaimName
		}
	}
	for _, m := range c.VolumeMounts {
		if ssMounts[m.Name] != m.MountPath {
			t.Errorf("init pod mounts %s at %s, the StatefulSet at %q", m.Name, m.MountPath, ssMounts[m.Name])
		}
		if want := m.Name + "-tokenvault-0"; claims[m.Name] != want || !slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(v pvcTemplate) bool { return v.Metadata.Name == m.Name }) {
			t.Errorf("init pod volume %s: claim %q, want %s (a volumeClaimTemplate of the StatefulSet)", m.Name, claims[m.Name], want)
		}
	}
}
