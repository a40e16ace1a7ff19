package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tokenvault",
		Short:         "A tokenization and PII vault: format-preserving tokens, encrypted originals, audited vendor access",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnvAndConfig(cmd)
		},
	}
	// --version prints what the version command prints.
	bi := readBuildInfo()
	root.Version = bi.Version
	root.SetVersionTemplate(bi.String())
	root.PersistentFlags().String("config", "", "serve: YAML file with settings (keys are flag names; flags and TOKENVAULT_* win)")
	root.AddCommand(newServeCmd(), newInitCmd())
	root.AddCommand(newTokenizeCmd(), newDetokenizeCmd(), newTemplateCmd())
	root.AddCommand(newCredentialCmd(), newGrantCmd(), newAuditCmd())
	root.AddCommand(newKeysCmd(), newBackupCmd(), newRestoreCmd())
	root.AddCommand(newMigrateCmd())
	root.AddCommand(newDeleteCmd(), newEraseSubjectCmd())
	root.AddCommand(newRecordCmd())
	root.AddCommand(newTextCmd())
	root.AddCommand(newBenchCmd(), newVersionCmd())
	markUsageErrors(root)
	return root
}
