//go:build tools

// Package tools records the S3-compatible server the backup tests run (versitygw, posix
// backend), so `go mod tidy` keeps it.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
