package main

import (
	"context"

	"github.com/payrail/payrail/processors"
)

// processors builds the registry of the processors this process runs.
func (s *services) processors(ctx context.Context) (*processors.Registry, error) {
	return processors.NewRegistry()
}
