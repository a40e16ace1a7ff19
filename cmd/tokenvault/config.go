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
func bindEnvAndConfig(cmd *cobra.Command) error {
	fileVals := map[string]any{}
	cfgPath, _ := cmd.Flags().GetString("config")
	if !cmd.Flags().Changed("config") {
		if v, ok := os.LookupEnv("TOKENVAULT_CONFIG"); ok {
			cfgPath = v
		}
	}
	if cfgPath != "" {
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			return fmt.Errorf("reading --config: %w", err)
		}
		if err := yaml.Unmarshal(data, &fileVals); err != nil {
			return fmt.Errorf("parsing --config %s: %w", cfgPath, err)
		}
		for k := range fileVals {
			if cmd.Flags().Lookup(k) == nil {
				return fmt.Errorf("--config %s: unknown setting %q", cfgPath, k)
			}
		}
	}
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" {
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
