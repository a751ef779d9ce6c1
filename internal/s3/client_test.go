package s3_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/s3"
	s3emu "github.com/rawkode/rawkode-cloud/internal/s3/emulator"
)

func setup(t *testing.T, faults *emulator.Faults) (*s3.Client, *s3emu.Emulator) {
	t.Helper()
	emu := s3emu.New(s3emu.Options{AccessKey: "SCWTESTTESTTESTTEST0", Buckets: []string{"backups"}, Faults: faults})
	t.Cleanup(emu.Close)
	c, err := s3.New(s3.Config{Endpoint: emu.URL(), Region: "fr-par", Bucket: "backups", AccessKey: "SCWTESTTESTTESTTEST0",
		SecretKey: "00000000-0000-4000-8000-000000000000", Retry: retry.Policy{Initial: time.Millisecond, Budget: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c, emu
}

func TestPutListGetDelete(t *testing.T) {
	t.Parallel()
	c, emu := setup(t, nil)
	ctx := context.Background()
	data := bytes.Repeat([]byte("etcd"), 100_000) // several aws-chunked chunks
	for _, k := range []string{"etcd/a/2.db", "etcd/a/1.db", "etcd/b/1.db"} {
		if err := c.Put(ctx, k, data); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := c.List(ctx, "etcd/a/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Key != "etcd/a/1.db" || objs[1].Key != "etcd/a/2.db" || objs[1].Size != int64(len(data)) {
		t.Fatalf("list: %+v", objs)
	}
	got, err := c.Get(ctx, "etcd/a/2.db")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v, %d bytes", err, len(got))
	}
	if _, err := c.Get(ctx, "etcd/a/missing.db"); !errors.Is(err, s3.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := c.Delete(ctx, "etcd/a/1.db"); err != nil {
		t.Fatal(err)
	}
	if n := len(emu.Objects()); n != 2 {
		t.Fatalf("%d objects after delete", n)
	}
}

func TestWrongKeyAndBucketAreRefused(t *testing.T) {
	t.Parallel()
	_, emu := setup(t, nil)
	bad, _ := s3.New(s3.Config{Endpoint: emu.URL(), Region: "fr-par", Bucket: "backups", AccessKey: "SCWWRONGWRONGWRONG00", SecretKey: "x"})
	if err := bad.Put(context.Background(), "k", []byte("v")); err == nil || !strings.Contains(err.Error(), "Access Key") {
		t.Fatalf("wrong key: %v", err)
	}
	nob, _ := s3.New(s3.Config{Endpoint: emu.URL(), Region: "fr-par", Bucket: "nope", AccessKey: "SCWTESTTESTTESTTEST0", SecretKey: "x"})
	if _, err := nob.List(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "bucket does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	t.Parallel()
	f := emulator.NewFaults()
	f.Set(s3emu.FaultPut, emulator.Fault{Kind: emulator.RateLimit, Times: 2})
	f.Set(s3emu.FaultList, emulator.Fault{Kind: emulator.Unavailable, Times: 2})
	c, _ := setup(t, f)
	ctx := context.Background()
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("put after 2 SlowDowns: %v", err)
	}
	if objs, err := c.List(ctx, ""); err != nil || len(objs) != 1 {
		t.Fatalf("list after 2 outages: %v %v", objs, err)
	}
	f.Set(s3emu.FaultGet, emulator.Fault{Kind: emulator.Error})
	if _, err := c.Get(ctx, "k"); err == nil {
		t.Fatal("get succeeded despite a permanent fault")
	}
}
