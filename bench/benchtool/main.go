// Command benchtool is the Go helper of bench/run.sh (issue 7). It is not
// part of pbench-auth and never ships.
//
//	benchtool mint -issuer URL -key FILE -n N -tokens FILE -header FILE
//	benchtool browse [-user NAME -pass PASSWORD] URL
//	benchtool send -url URL -tokens FILE [-from N] [-c 4]
//	benchtool upstream [-listen 127.0.0.1:0]
//	benchtool conns -pid PID -port PORT
//
// mint logs in at the development broker of `serve --dev` (code flow with
// PKCE, the broker's form filled by devbrowser) to get one real access
// token, then writes N distinct tokens with the same claims to -tokens, one
// per line: each has its own jti, sid, sub, preferred_username and email (N
// different users), a fresh iat and an exp one hour ahead (-ttl), and is
// signed RS256 with the broker's key (the --dev-key file, same kid), so the
// server accepts every one as if the broker had issued it. The real token
// itself goes to -header as "Authorization: Bearer TOKEN" (for curl -H @FILE
// and wrk), so no token is ever on a command line. Both files are 0600.
//
// browse is a --browser-command for `pbench-auth login`: it fills the
// development broker's login form and delivers the redirect to the CLI's
// loopback listener, as a person's browser would.
//
// send GETs URL once with each token of -tokens from line -from on, with -c
// requests in flight, and fails unless every answer is 200. It fills the
// server's verified-token cache before its memory is read; it measures
// nothing (wrk does the load runs).
//
// upstream is the API behind the gateways (pbench-auth serve --upstream,
// oauth2-proxy): it answers every GET with a small JSON document, like an
// API listing, keeps connections alive, and counts the TCP connections it
// accepted, which GET /_bench/conns returns (asked directly, not through a
// gateway). It prints "listening on URL" on stderr.
//
// conns prints how many TCP connections process PID has open to PORT
// (ESTABLISHED, from /proc/PID/fd and /proc/net/tcp): the gateway's pool of
// upstream connections.
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

const usage = `usage:
  benchtool mint -issuer URL -key FILE -n N -tokens FILE -header FILE [-user NAME -pass PASSWORD] [-ttl 1h]
  benchtool browse [-user NAME -pass PASSWORD] URL
  benchtool send -url URL -tokens FILE [-from N] [-c 4]
  benchtool upstream [-listen 127.0.0.1:0]
  benchtool conns -pid PID -port PORT`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "mint":
		err = mint(ctx, os.Args[2:])
	case "browse":
		err = browse(ctx, os.Args[2:])
	case "send":
		err = send(ctx, os.Args[2:])
	case "upstream":
		err = upstream(os.Args[2:])
	case "conns":
		err = conns(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q\n%s", os.Args[1], usage)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func browse(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("browse", flag.ContinueOnError)
	user := fs.String("user", "user", "development broker user")
	pass := fs.String("pass", "user", "its password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("browse needs the login URL as its only argument")
	}
	loc, err := devbrowser.Login(ctx, httpClient, fs.Arg(0), *user, *pass)
	if err != nil {
		return fmt.Errorf("log in at the broker: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("deliver the redirect to the CLI's listener: %w", err)
	}
	return resp.Body.Close()
}

type mintOptions struct {
	issuer, keyFile, tokensFile, headerFile string
	user, pass                              string
	n                                       int
	ttl                                     time.Duration
}

func mint(ctx context.Context, args []string) error {
	var o mintOptions
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	fs.StringVar(&o.issuer, "issuer", "", "issuer of serve --dev, http://HOST:PORT/realms/REALM")
	fs.StringVar(&o.keyFile, "key", "", "the --dev-key PEM file of that serve")
	fs.IntVar(&o.n, "n", 0, "how many distinct tokens to write")
	fs.StringVar(&o.tokensFile, "tokens", "", "file for the distinct tokens, one per line")
	fs.StringVar(&o.headerFile, "header", "", `file for the broker's own token as "Authorization: Bearer TOKEN"`)
	fs.StringVar(&o.user, "user", "user", "development broker user")
	fs.StringVar(&o.pass, "pass", "user", "its password")
	fs.DurationVar(&o.ttl, "ttl", time.Hour, "lifetime of the distinct tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.issuer == "" || o.keyFile == "" || o.tokensFile == "" || o.headerFile == "" || o.n < 0 {
		return fmt.Errorf("mint needs -issuer, -key, -tokens, -header and -n ≥ 0\n%s", usage)
	}
	key, err := loadKey(o.keyFile)
	if err != nil {
		return err
	}
	template, err := brokerToken(ctx, o.issuer, o.user, o.pass)
	if err != nil {
		return err
	}
	if err := writeSecret(o.headerFile, []byte("Authorization: Bearer "+template+"\n")); err != nil {
		return err
	}
	header, payload, err := splitToken(template)
	if err != nil {
		return err
	}
	return writeTokens(o.tokensFile, o.n, func(i int) (string, error) {
		return variant(header, payload, i, o.ttl, key)
	})
}

// brokerToken gets an access token from the development broker by the code
// flow with PKCE; the redirect URI is never fetched (any loopback one is
// accepted by the broker).
func brokerToken(ctx context.Context, issuer, user, pass string) (string, error) {
	conf := &oauth2.Config{
		ClientID: "pbench-client",
		Endpoint: oauth2.Endpoint{
			AuthURL:  issuer + "/protocol/openid-connect/auth",
			TokenURL: issuer + "/protocol/openid-connect/token",
		},
		RedirectURL: "http://127.0.0.1:1/callback",
		Scopes:      []string{"openid", "profile", "email"},
	}
	verifier := oauth2.GenerateVerifier()
	loc, err := devbrowser.Login(ctx, httpClient, conf.AuthCodeURL("bench", oauth2.S256ChallengeOption(verifier)), user, pass)
	if err != nil {
		return "", fmt.Errorf("log in at %s as %s: %w", issuer, user, err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("broker redirect: %w", err)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, httpClient)
	tok, err := conf.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("code exchange at %s: %w", issuer, err)
	}
	return tok.AccessToken, nil
}

func splitToken(token string) (header string, payload map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", nil, errors.New("the broker's access token is not a JWS in compact form")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil, fmt.Errorf("the broker's access token payload: %w", err)
	}
	if err := json.Unmarshal(raw, &payload); err != nil {
		return "", nil, fmt.Errorf("the broker's access token payload: %w", err)
	}
	return parts[0], payload, nil
}

// variant is the template's claims as user number i, signed with key.
func variant(header string, template map[string]any, i int, ttl time.Duration, key *rsa.PrivateKey) (string, error) {
	c := make(map[string]any, len(template))
	for k, v := range template {
		c[k] = v
	}
	now := time.Now()
	c["jti"] = fmt.Sprintf("bench-%d-%d", now.UnixNano(), i)
	c["sid"] = fmt.Sprintf("bench-session-%d", i)
	c["session_state"] = c["sid"]
	c["sub"] = fmt.Sprintf("5f0a3b2e-0c4b-4a8e-9d55-%012d", i)
	c["preferred_username"] = fmt.Sprintf("user%06d", i)
	c["name"] = c["preferred_username"]
	c["email"] = fmt.Sprintf("user%06d@example.com", i)
	c["iat"] = now.Unix()
	c["exp"] = now.Add(ttl).Unix()
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := header + "." + base64.RawURLEncoding.EncodeToString(body)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token %d: %w", i, err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// writeTokens writes n tokens made by mk, one per line, signing on every
// core (RSA signing is the slow part: about a millisecond each).
func writeTokens(path string, n int, mk func(int) (string, error)) error {
	out := make([]string, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n && errs[w] == nil; i += len(errs) {
				out[i], errs[w] = mk(i)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) //nolint:gosec // G304: the bench script names its files
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, t := range out {
		_, _ = w.WriteString(t)
		_ = w.WriteByte('\n')
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeSecret(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Chmod(path, 0o600) // WriteFile keeps the mode of an existing file
}

// loadKey reads the PEM key that `serve --dev --dev-key FILE` writes.
func loadKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the bench script names the key file
	if err != nil {
		return nil, fmt.Errorf("signing key: %w (start serve --dev --dev-key %s first)", err, path)
	}
	return devbroker.ParseKey(path, data)
}

func send(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	target := fs.String("url", "", "URL to GET with each token")
	file := fs.String("tokens", "", "file of tokens, one per line")
	from := fs.Int("from", 0, "skip this many tokens first")
	conc := fs.Int("c", 4, "requests in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || *file == "" || *from < 0 || *conc < 1 {
		return fmt.Errorf("send needs -url, -tokens, -from ≥ 0 and -c ≥ 1\n%s", usage)
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	tokens := strings.Fields(string(data))
	if *from > len(tokens) {
		return fmt.Errorf("-from %d: the file has only %d tokens", *from, len(tokens))
	}
	tokens = tokens[*from:]
	tr := &http.Transport{MaxIdleConnsPerHost: *conc}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	next := make(chan string)
	errs := make([]error, *conc)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				if errs[w] == nil {
					errs[w] = get(ctx, client, *target, t)
				}
			}
		}()
	}
	for _, t := range tokens {
		next <- t
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("sent %d tokens, all answered 200\n", len(tokens))
	return nil
}

func get(ctx context.Context, client *http.Client, target, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s with a minted token: %s, want 200 (is the server the serve --dev that minted them?)", target, resp.Status)
	}
	return nil
}
