package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// postgresOverlay is the kustomize overlay that runs replicas on PostgreSQL, and
// postgresConfig its serve settings (no data: the store is TOKENVAULT_STORE).
var (
	postgresOverlay = filepath.Join("kubernetes", "overlays", "postgres")
	postgresConfig  = filepath.Join(postgresOverlay, "config.yaml")
)

// deploymentObj is the part of a Deployment the checks read.
type deploymentObj struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			RollingUpdate struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Spec struct {
				SecurityContext secContext  `yaml:"securityContext"`
				InitContainers  []container `yaml:"initContainers"`
				Containers      []struct {
					container `yaml:",inline"`
					Env       []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom struct {
							SecretKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
							FieldRef *struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					PVC *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestPostgresOverlayFiles checks the overlay's own files (no kubectl needed): every resource
// and patch it names exists, and its Deployment runs 3 hardened replicas, ready on /healthz,
// with the store URL and password from Secret tokenvault-store, the replica id from the pod
// name, the shared KEK copied from its Secret as the base does, and one erasure log per
// replica on the shared volume.
func TestPostgresOverlayFiles(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Path string `yaml:"path"`
		} `yaml:"patches"`
		ConfigMapGenerator []struct {
			Name     string   `yaml:"name"`
			Behavior string   `yaml:"behavior"`
			Files    []string `yaml:"files"`
		} `yaml:"configMapGenerator"`
	}
	b, err := os.ReadFile(filepath.Join(postgresOverlay, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(k.Resources, "../../base") {
		t.Errorf("the overlay must build on the base (../../base), resources %q", k.Resources)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(postgresOverlay, r)); err != nil {
			t.Errorf("overlay resource: %v", err)
		}
	}
	for _, p := range k.Patches {
		if _, err := os.Stat(filepath.Join(postgresOverlay, p.Path)); err != nil {
			t.Errorf("overlay patch: %v", err)
		}
	}
	if len(k.ConfigMapGenerator) != 1 || k.ConfigMapGenerator[0].Name != "tokenvault-config" || k.ConfigMapGenerator[0].Behavior != "replace" {
		t.Errorf("the overlay must replace ConfigMap tokenvault-config with its config.yaml: %+v", k.ConfigMapGenerator)
	}
	docs, err := decodeAll(filepath.Join(postgresOverlay, "deployment.yaml"))
	if err != nil || len(docs) != 1 {
		t.Fatalf("deployment.yaml: %v (%d documents)", err, len(docs))
	}
	var d deploymentObj
	if err := docs[0].Decode(&d); err != nil {
		t.Fatal(err)
	}
	checkPostgresDeployment(t, d)
}

// checkPostgresDeployment checks the overlay's Deployment (from its file or rendered).
func checkPostgresDeployment(t *testing.T, d deploymentObj) {
	t.Helper()
	if d.Kind != "Deployment" || d.Metadata.Name != "tokenvault" {
		t.Fatalf("want Deployment tokenvault, got %s %s", d.Kind, d.Metadata.Name)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
	}
	if mu := d.Spec.Strategy.RollingUpdate.MaxUnavailable; mu == nil || (mu != 0 && mu != "0") {
		t.Errorf("rollingUpdate.maxUnavailable = %v, want 0 (a rollout adds a replica before removing one)", mu)
	}
	pod := d.Spec.Template.Spec
	if !isTrue(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 ||
		pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Error("pod securityContext: runAsNonRoot, a non-root runAsUser and seccomp RuntimeDefault are required")
	}
	all := slices.Clone(pod.InitContainers)
	for _, c := range pod.Containers {
		all = append(all, c.container)
	}
	for _, c := range all {
		sc := c.SecurityContext
		if !isTrue(sc.ReadOnlyRootFilesystem) || !isFalse(sc.AllowPrivilegeEscalation) || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: readOnlyRootFilesystem, no privilege escalation and drop ALL are required", c.Name)
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %s: set memory requests and limits", c.Name)
		}
	}
	// The KEK: copied exactly as the base's StatefulSet copies it.
	var ss statefulSet
	if err := kubeObjects(t)["StatefulSet/tokenvault"].Decode(&ss); err != nil {
		t.Fatal(err)
	}
	if len(pod.InitContainers) != 1 || !slices.Equal(pod.InitContainers[0].Command, ss.Spec.Template.Spec.InitContainers[0].Command) {
		t.Error("the KEK must be copied from Secret tokenvault-kek as the base's init container does")
	}
	if len(pod.Containers) != 1 || pod.Containers[0].Name != "tokenvault" {
		t.Fatalf("want one container named tokenvault")
	}
	tv := pod.Containers[0]
	if p := tv.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Scheme != "HTTPS" {
		t.Errorf("readiness probe must be GET /healthz over HTTPS: %+v", p)
	}
	if p := tv.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/livez" {
		t.Errorf("liveness probe must be GET /livez (losing the database must not restart the pod): %+v", p)
	}
	env := map[string]int{}
	for i, e := range tv.Env {
		env[e.Name] = i
	}
	secret := func(name, key string) {
		i, ok := env[name]
		if !ok {
			t.Errorf("env %s is not set", name)
			return
		}
		if r := tv.Env[i].ValueFrom.SecretKeyRef; r == nil || r.Name != "tokenvault-store" || r.Key != key || tv.Env[i].Value != "" {
			t.Errorf("env %s must come from Secret tokenvault-store key %s", name, key)
		}
	}
	secret("TOKENVAULT_STORE", "url")
	secret("PGPASSWORD", "password")
	if i, ok := env["TOKENVAULT_REPLICA_ID"]; !ok || tv.Env[i].ValueFrom.FieldRef == nil || tv.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Error("env TOKENVAULT_REPLICA_ID must be the pod name (downward API fieldRef metadata.name)")
	}
	// Args: serve with the overlay's config, and an erasure log per replica on the shared
	// volume (the file named after the replica, expanded by Kubernetes).
	at := func(flag string) string {
		i := slices.Index(tv.Args, flag)
		if i < 0 || i+1 >= len(tv.Args) {
			return ""
		}
		return tv.Args[i+1]
	}
	if len(tv.Args) == 0 || tv.Args[0] != "serve" || at("--config") != "/etc/tokenvault/config/config.yaml" {
		t.Errorf("args %q: want serve --config /etc/tokenvault/config/config.yaml", tv.Args)
	}
	mounts := map[string]string{}
	for _, m := range tv.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	elog := at("--erasure-log")
	if !strings.Contains(elog, "$(TOKENVAULT_REPLICA_ID)") || mounts[filepath.Dir(elog)] == "" {
		t.Errorf("--erasure-log %q: want a file named $(TOKENVAULT_REPLICA_ID) in a mounted volume", elog)
	}
	claims := map[string]string{}
	for _, v := range pod.Volumes {
		if v.PVC != nil {
			claims[v.Name] = v.PVC.ClaimName
		}
	}
	if claims[mounts[filepath.Dir(elog)]] != "tokenvault-erasures" {
		t.Errorf("the erasure logs must be on claim tokenvault-erasures (shared, ReadWriteMany), got volume %q", mounts[filepath.Dir(elog)])
	}
	// The config's paths are in mounted volumes.
	cfg := readConfig(t, postgresConfig)
	if cfg["data"] != "" {
		t.Errorf("%s: no data directory on PostgreSQL (the pods keep no state)", postgresConfig)
	}
	for _, key := range []string{"kek-file", "tls-cert", "tls-key", "vendor-tls-cert", "vendor-tls-key", "vendor-client-ca"} {
		p := cfg[key]
		found := false
		for mp := range mounts {
			found = found || strings.HasPrefix(p, mp+"/")
		}
		if !found {
			t.Errorf("%s: %s %s is not in a volume mounted by the tokenvault container", postgresConfig, key, p)
		}
	}
}

// TestPostgresOverlayRenders renders the overlay with kubectl kustomize (when installed) and
// checks the result: a Deployment of 3 replicas instead of the StatefulSet, no headless
// Service, a PodDisruptionBudget keeping 2 of them, the ReadWriteMany claim for the erasure
// logs, egress to PostgreSQL, and the overlay's config in ConfigMap tokenvault-config.
func TestPostgresOverlayRenders(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: TestPostgresOverlayFiles checks the files")
	}
	out, err := exec.Command(kubectl, "kustomize", postgresOverlay).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", postgresOverlay, err, out)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	kinds := map[string]*yaml.Node{}
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var o struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		if err := n.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if o.Kind != "Namespace" && o.Metadata.Namespace != "tokenvault" {
			t.Errorf("%s/%s: namespace %q, want tokenvault", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		name := o.Metadata.Name
		if o.Kind == "ConfigMap" && strings.HasPrefix(name, "tokenvault-config-") {
			name = "tokenvault-config" // with its content hash
		}
		kinds[o.Kind+"/"+name] = &n
	}
	for _, gone := range []string{"StatefulSet/tokenvault", "Service/tokenvault-headless"} {
		if kinds[gone] != nil {
			t.Errorf("the overlay still renders %s", gone)
		}
	}
	for _, want := range []string{"Deployment/tokenvault", "PodDisruptionBudget/tokenvault", "PersistentVolumeClaim/tokenvault-erasures",
		"NetworkPolicy/tokenvault", "NetworkPolicy/tokenvault-postgres", "Service/tokenvault", "Service/tokenvault-vendor", "ConfigMap/tokenvault-config"} {
		if kinds[want] == nil {
			t.Errorf("the overlay does not render %s", want)
		}
	}
	if n := kinds["Deployment/tokenvault"]; n != nil {
		var d deploymentObj
		if err := n.Decode(&d); err != nil {
			t.Fatal(err)
		}
		checkPostgresDeployment(t, d)
		if img := d.Spec.Template.Spec.Containers[0].Image; !strings.Contains(img, "/tokenvault:") {
			t.Errorf("image %q: the overlay must set the image (images:)", img)
		}
	}
	if n := kinds["PodDisruptionBudget/tokenvault"]; n != nil {
		var pdb struct {
			Spec map[string]any `yaml:"spec"`
		}
		if err := n.Decode(&pdb); err != nil {
			t.Fatal(err)
		}
		if pdb.Spec["minAvailable"] != 2 || pdb.Spec["maxUnavailable"] != nil {
			t.Errorf("PodDisruptionBudget spec %v: want minAvailable 2 and no maxUnavailable", pdb.Spec)
		}
	}
	if n := kinds["PersistentVolumeClaim/tokenvault-erasures"]; n != nil {
		var pvc struct {
			Spec struct {
				AccessModes []string `yaml:"accessModes"`
			} `yaml:"spec"`
		}
		if err := n.Decode(&pvc); err != nil || !slices.Equal(pvc.Spec.AccessModes, []string{"ReadWriteMany"}) {
			t.Errorf("claim tokenvault-erasures: access modes %q, %v; want ReadWriteMany (every replica writes its log)", pvc.Spec.AccessModes, err)
		}
	}
	if n := kinds["NetworkPolicy/tokenvault-postgres"]; n != nil && !bytes.Contains(mustMarshal(t, n), []byte("port: 5432")) {
		t.Error("NetworkPolicy tokenvault-postgres must allow egress to PostgreSQL (5432)")
	}
	if n := kinds["ConfigMap/tokenvault-config"]; n != nil {
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		want, _ := os.ReadFile(postgresConfig)
		if err := n.Decode(&cm); err != nil || strings.TrimSpace(cm.Data["config.yaml"]) != strings.TrimSpace(string(want)) {
			t.Errorf("ConfigMap tokenvault-config does not hold %s", postgresConfig)
		}
	}
}

func mustMarshal(t *testing.T, n *yaml.Node) []byte {
	t.Helper()
	b, err := yaml.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
