// Package deploy_test checks the deployment files under deploy/: every YAML file parses, the
// Kubernetes StatefulSet keeps its single-writer and hardening settings, the tokenvault config
// files use only real serve flags (and TLS wherever serve requires it), the Dockerfile matches
// the module, and systemd accepts the unit.
package deploy_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// serveFlags are the flags of "tokenvault serve" (from "tokenvault serve --help"), the only
// keys a config file may hold. The file is applied to every command, so client flags would be
// rejected by serve as unknown settings.
var serveFlags = []string{
	"data", "dev", "dev-root-token", "grpc-addr", "http-addr", "vendor-addr",
	"kek-file", "kek-uri", "log-level", "rotate-after",
	"tls-cert", "tls-key", "vendor-tls-cert", "vendor-tls-key", "vendor-client-ca",
}

// configFiles are the tokenvault config files (YAML, keys are serve flags) under deploy/.
func configFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("config", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("systemd", "config.yaml"), filepath.Join("kubernetes", "config.yaml"))
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

// kubeObjects returns every document of deploy/kubernetes/*.yaml with its kind and name.
func kubeObjects(t *testing.T) map[string]*yaml.Node {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
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
		if p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s probe path = %q, want /healthz", name, p.HTTPGet.Path)
		}
		if port := fmt.Sprint(p.HTTPGet.Port); port != "http" && port != fmt.Sprint(httpPort) {
			t.Errorf("%s probe port = %v, want the internal HTTP port (http, %d)", name, p.HTTPGet.Port, httpPort)
		}
	}

	// The config the pod runs with: its settings must point into the pod's volumes, and the
	// probes' scheme must match whether the HTTP listener has TLS.
	cfg := readConfig(t, filepath.Join("kubernetes", "config.yaml"))
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
				t.Errorf("kubernetes/config.yaml: %s %s is not in a volume mounted by the tokenvault container", k, p)
			}
		}
	}
	if name, _ := under(cfg["data"]); !slices.ContainsFunc(spec.VolumeClaimTemplates, func(v pvcTemplate) bool { return v.Metadata.Name == name }) {
		t.Errorf("kubernetes/config.yaml: data %s is not on the persistent volume claim", cfg["data"])
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
	b, err := os.ReadFile(filepath.Join("kubernetes", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
			t.Errorf("kustomization resource: %v", err)
		}
	}
	listed, _ := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	for _, f := range listed {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && base != "config.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("kubernetes/%s is not listed in kustomization.yaml resources", base)
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

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func TestConfigFiles(t *testing.T) {
	for _, p := range configFiles(t) {
		cfg := readConfig(t, p)
		if cfg["dev"] == "true" || cfg["dev-root-token"] != "" {
			t.Errorf("%s: a deployment config must not use dev mode", p)
		}
		if cfg["data"] == "" {
			t.Errorf("%s: data is required outside dev mode", p)
		}
		if cfg["kek-file"] == "" && cfg["kek-uri"] == "" {
			t.Errorf("%s: a KEK is required outside dev mode (kek-file or kek-uri)", p)
		}
		// serve refuses plain text on a non-loopback address; the default addresses are loopback.
		for _, l := range []struct{ addr, cert, key string }{
			{"grpc-addr", "tls-cert", "tls-key"},
			{"http-addr", "tls-cert", "tls-key"},
			{"vendor-addr", "vendor-tls-cert", "vendor-tls-key"},
		} {
			if a := cfg[l.addr]; a != "" && !isLoopback(a) && (cfg[l.cert] == "" || cfg[l.key] == "") {
				t.Errorf("%s: %s %s is not loopback: serve requires %s and %s", p, l.addr, a, l.cert, l.key)
			}
		}
		for _, pair := range [][2]string{{"tls-cert", "tls-key"}, {"vendor-tls-cert", "vendor-tls-key"}} {
			if (cfg[pair[0]] == "") != (cfg[pair[1]] == "") {
				t.Errorf("%s: %s and %s go together", p, pair[0], pair[1])
			}
		}
		if cfg["vendor-client-ca"] != "" && cfg["vendor-tls-cert"] == "" {
			t.Errorf("%s: vendor-client-ca needs vendor-tls-cert and vendor-tls-key", p)
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
		"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/tokenvault",
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
