package typelist_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/typelist"
)

var testCache = config.Cache{TTL: time.Minute, StaleMax: 10 * time.Minute, MaxEntries: 10, ReadTimeout: 2 * time.Second}

func get(t *testing.T, h http.Handler, query string) (*httptest.ResponseRecorder, typelist.Page) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/metrics/types"+query, nil))
	var p typelist.Page
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
	}
	return rec, p
}

func TestTypesSortedMergedAndPaginated(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := store.NewKeys("metrics")
	t0 := time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC)
	us := func(d time.Duration) float64 { return float64(t0.Add(d).UnixMicro()) }
	rdb.ZAdd(ctx, k.Types(0), redis.Z{Score: us(0), Member: "mem"}, redis.Z{Score: us(time.Minute), Member: "cpu"})
	rdb.ZAdd(ctx, k.Types(1), redis.Z{Score: us(time.Hour), Member: "cpu"}, redis.Z{Score: us(0), Member: "disk.io"},
		redis.Z{Score: us(0), Member: "a:b"})
	st, err := store.New(rdb, k.Family(), 2)
	if err != nil {
		t.Fatal(err)
	}
	h, err := typelist.New(st, typelist.Options{Cache: testCache})
	if err != nil {
		t.Fatal(err)
	}

	rec, all := get(t, h, "")
	if rec.Code != http.StatusOK || len(all.Types) != 4 || all.NextCursor != "" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	want := []typelist.Type{{"a:b", "2026-02-15T10:00:00Z"}, {"cpu", "2026-02-15T11:00:00Z"}, {"disk.io", "2026-02-15T10:00:00Z"}, {"mem", "2026-02-15T10:00:00Z"}}
	for i := range want {
		if all.Types[i] != want[i] {
			t.Errorf("types[%d] = %+v, want %+v (sorted by name, latest last-seen of all partitions)", i, all.Types[i], want[i])
		}
	}

	var got []typelist.Type
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("pagination does not end")
		}
		q := "?limit=3"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		rec, p := get(t, h, q)
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		got = append(got, p.Types...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(got) != 4 || got[3] != want[3] {
		t.Errorf("paged %+v", got)
	}

	for _, tt := range []struct{ query, field string }{
		{"?limit=0", "limit"}, {"?limit=1001", "limit"}, {"?limit=x", "limit"}, {"?cursor=!!", "cursor"}, {"?cursor=e30", "cursor"},
	} {
		rec, _ := get(t, h, tt.query)
		var p struct{ Errors []struct{ Field string } }
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != tt.field {
			t.Errorf("%s: %d %s, want 400 naming %s", tt.query, rec.Code, rec.Body, tt.field)
		}
	}
}

func TestEmptyListIsAnEmptyArray(t *testing.T) {
	srv := redistest.Start(t)
	st, err := store.New(srv.Client(t), "metrics", 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := typelist.New(st, typelist.Options{Cache: testCache})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := get(t, h, "")
	if rec.Code != http.StatusOK || rec.Body.String() != "{\"types\":[]}\n" {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
}
