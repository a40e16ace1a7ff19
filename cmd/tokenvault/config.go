package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// bindEnvAndConfig fills every flag the user did not set from TOKENVAULT_<FLAG> (dashes as
// underscores), then from the YAML file named by --config (keys are flag names). Flags win
// over the environment, which wins over the file.
//
// The config file is the server's: only serve reads it. Client commands read from the
// environment only their connection settings (TOKENVAULT_ADDR, TOKENVAULT_TOKEN,
// TOKENVAULT_CA_FILE, TOKENVAULT_TLS, TOKENVAULT_TLS_SERVER_NAME, TOKENVAULT_CERT_FILE,
// TOKENVAULT_KEY_FILE), so a server's environment
// (TOKENVAULT_DATA, …) does not leak into offline tools such as audit verify.
func bindEnvAndConfig(cmd *cobra.Command) error {
	fileVals := map[string]any{}
	cfgPath, _ := cmd.Flags().GetString("config")
	isServe := cmd.Name() == "serve"
	if !cmd.Flags().Changed("config") && isServe {
		if v, ok := os.LookupEnv("TOKENVAULT_CONFIG"); ok {
			cfgPath = v
		}
	}
	if cfgPath != "" && !isServe {
		return fmt.Errorf("--config is read by serve only")
	}
	if cfgPath != "" {
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			return fmt.Errorf("reading --config: %w", err)
		}
		if err := yaml.Unmarshal(data, &fileVals); err != nil {
			return fmt.Errorf("parsing --config %s: %w", cfgPath, err)
		}
		for k, v := range fileVals {
			if cmd.Flags().Lookup(k) == nil {
				return fmt.Errorf("--config %s: unknown setting %q", cfgPath, k)
			}
			switch v.(type) {
			case map[string]any, []any:
				return fmt.Errorf("--config %s: setting %q must be a single value", cfgPath, k)
			}
		}
	}
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		if !isServe && !clientEnv[f.Name] {
			return
		}
		env := "TOKENVAULT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", env, err))
			}
			return
		}
		if v, ok := fileVals[f.Name]; ok {
			if err := cmd.Flags().Set(f.Name, fmt.Sprint(v)); err != nil {
				errs = append(errs, fmt.Sprintf("config %s: %v", f.Name, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("bad settings: %s", strings.Join(errs, "; "))
	}
	return nil
}

// clientEnv are the flags client commands read from TOKENVAULT_* variables.
var clientEnv = map[string]bool{"addr": true, "token": true, "ca-file": true, "tls": true, "tls-server-name": true, "cert-file": true, "key-file": true}
