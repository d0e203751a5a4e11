package sqlitekeys

import (
	"context"
	"fmt"
)

// Tenants lists the tenants that have subject keys, in order: the tenants a retention window
// that applies to every tenant (lineaged --erasure-retention-days) has to look at.
func (s *SQLiteStore) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT tenant FROM subject_keys ORDER BY tenant")
	if err != nil {
		return nil, fmt.Errorf("seal: tenants: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("seal: tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seal: tenants: %w", err)
	}
	return out, nil
}
