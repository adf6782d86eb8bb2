package inventory

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"fmt"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

// catalogJSON is the seed catalog: what a new shop sells until an admin
// changes it, so a fresh `microshop run` has something to browse and buy.
//
//go:embed catalog.json
var catalogJSON []byte

// seedCatalog decodes and checks the seed catalog.
func seedCatalog() ([]NewProduct, error) {
	var ps []NewProduct
	if p := httpjson.DecodeBytes(bytes.NewReader(catalogJSON), &ps); p != nil {
		return nil, fmt.Errorf("the seed catalog: %w", p)
	}
	for _, p := range ps {
		if errs := p.Valid(); len(errs) > 0 {
			return nil, fmt.Errorf("the seed catalog: product %q: %s %s", p.SKU, errs[0].Field, errs[0].Reason)
		}
	}
	return ps, nil
}

// seed loads the seed catalog, in one transaction, when there are no
// products yet. Replicas starting together may both find the table empty;
// the inserts skip what another has already stored.
func (s *Service) seed(ctx context.Context) error {
	n, err := s.store.countProducts(ctx)
	if err != nil || n > 0 {
		return err
	}
	ps, err := seedCatalog()
	if err != nil {
		return err
	}
	now := s.now()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, np := range ps {
			p := product{SKU: np.SKU, Name: np.Name, Description: np.Description, PriceCents: np.PriceCents,
				Currency: np.Currency, Received: np.Stock, Available: np.Stock}
			if err := s.store.insertProduct(ctx, tx, p, now, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading the seed catalog: %w", err)
	}
	s.log.Info("seed catalog loaded", "products", len(ps))
	return nil
}
