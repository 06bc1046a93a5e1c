package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OldestUnpublished is the age of the oldest outbox row not yet
// acknowledged by JetStream (0 when there is none). Unlike OutboxBacklog
// it counts nothing: one row from the unpublished index, cheap enough
// for a readiness probe.
func (s *Store) OldestUnpublished(ctx context.Context) (time.Duration, error) {
	var age float64
	err := s.pool.QueryRow(ctx, `
		SELECT EXTRACT(EPOCH FROM now() - created_at)::float8
		  FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1`).Scan(&age)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: oldest unpublished outbox row: %w", err)
	}
	return time.Duration(age * float64(time.Second)), nil
}
