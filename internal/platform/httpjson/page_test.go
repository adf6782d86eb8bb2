package httpjson

import (
	"net/url"
	"testing"
)

func TestReadPage(t *testing.T) {
	valid := func(k string) bool { return k == "sku-7" }
	cases := []struct {
		query string
		want  Page
		bad   []string
	}{
		{"", Page{Limit: 20}, nil},
		{"limit=5&page_token=" + PageToken("sku-7"), Page{Limit: 5, After: "sku-7"}, nil},
		{"limit=0", Page{}, []string{"limit"}},
		{"limit=101", Page{}, []string{"limit"}},
		{"limit=ten", Page{}, []string{"limit"}},
		{"page_token=***", Page{}, []string{"page_token"}},
		{"page_token=" + PageToken("sku-8"), Page{}, []string{"page_token"}},
		{"limit=-1&page_token=!!", Page{}, []string{"limit", "page_token"}},
	}
	for _, c := range cases {
		v, _ := url.ParseQuery(c.query)
		got, errs := ReadPage(v, 20, 100, valid)
		if len(errs) != len(c.bad) {
			t.Errorf("%q: errors %+v, want on %v", c.query, errs, c.bad)
			continue
		}
		for i, f := range c.bad {
			if errs[i].Field != f || errs[i].Reason == "" {
				t.Errorf("%q: error %d is %+v, want one on %s", c.query, i, errs[i], f)
			}
		}
		if c.bad == nil && got != c.want {
			t.Errorf("%q: %+v, want %+v", c.query, got, c.want)
		}
	}
}
