package main

import (
	"context"
	"io"
)

func cmdChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
