// Package s3 stores and fetches etcd snapshots in S3-compatible object
// storage (Scaleway Object Storage by default) through minio-go, a
// maintained S3 client. Its emulator is in the emulator sub-package.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// ErrNotFound is a missing object.
var ErrNotFound = errors.New("not found")

// Config says where the bucket is and how to sign in. SecretKey is never
// part of an error message.
type Config struct {
	Endpoint  string // https://s3.fr-par.scw.cloud
	Region    string // fr-par
	Bucket    string
	AccessKey string
	SecretKey string
	// HTTPClient replaces the default transport (tests, metering).
	HTTPClient *http.Client
	Retry      retry.Policy
}

// Object is one stored object.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Client talks to one bucket.
type Client struct {
	mc     *minio.Client
	bucket string
	retry  retry.Policy
}

// New builds a client (no network call).
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("object storage endpoint %q: want an http(s) URL", cfg.Endpoint)
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: u.Scheme == "https",
		// Known up front: no GetBucketLocation round trip.
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		// Retries are ours, under one policy with the rest of the CLI.
		MaxRetries: 1,
	}
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		opts.Transport = cfg.HTTPClient.Transport
	}
	mc, err := minio.New(u.Host, opts)
	if err != nil {
		return nil, fmt.Errorf("object storage client: %w", err)
	}
	return &Client{mc: mc, bucket: cfg.Bucket, retry: cfg.Retry}, nil
}

// classify marks what is worth retrying: S3's 5xx (SlowDown,
// ServiceUnavailable, InternalError) and network errors.
func classify(err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey":
		return retry.Permanent(fmt.Errorf("%w: %s", ErrNotFound, resp.Message))
	case resp.StatusCode >= 500 || resp.Code == "SlowDown":
		return retry.Transient(err, 0)
	case resp.StatusCode == 0:
		return retry.Transient(err, 0) // no answer: network
	}
	return retry.Permanent(err)
}

// Put stores data under key.
func (c *Client) Put(ctx context.Context, key string, data []byte) error {
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		_, err := c.mc.PutObject(ctx, c.bucket, key, bytes.NewReader(data), int64(len(data)),
			minio.PutObjectOptions{ContentType: "application/octet-stream"})
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("upload s3://%s/%s: %w", c.bucket, key, err)
	}
	return nil
}

// Get fetches the object at key.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		obj, err := c.mc.GetObject(ctx, c.bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return classify(err)
		}
		defer obj.Close()
		data, err = io.ReadAll(obj)
		return classify(err)
	})
	if err != nil {
		return nil, fmt.Errorf("download s3://%s/%s: %w", c.bucket, key, err)
	}
	return data, nil
}

// List returns the objects under prefix, oldest first.
func (c *Client) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		out = nil
		for o := range c.mc.ListObjects(ctx, c.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				return classify(o.Err)
			}
			out = append(out, Object{Key: o.Key, Size: o.Size, Modified: o.LastModified})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list s3://%s/%s: %w", c.bucket, prefix, err)
	}
	// Keys carry a sortable UTC timestamp; the server's clock is not ours.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the object at key (absent is fine).
func (c *Client) Delete(ctx context.Context, key string) error {
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return classify(c.mc.RemoveObject(ctx, c.bucket, key, minio.RemoveObjectOptions{}))
	})
	if err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", c.bucket, key, err)
	}
	return nil
}

// Bucket names the bucket, for messages.
func (c *Client) Bucket() string { return c.bucket }
