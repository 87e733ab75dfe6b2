package caddymodule

import "github.com/spf13/cobra"

func previewCommand() *cobra.Command { return &cobra.Command{Use: "preview"} }
