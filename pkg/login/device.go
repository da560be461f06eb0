package login

import (
	"context"
	"errors"
	"fmt"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
)

// printableCode reports whether a user code is short printable text (RFC
// 8628 codes are a few letters and digits, maybe with a dash).
func printableCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// deviceLogin is the device authorization grant (RFC 8628): the user opens
// the verification URI on any device and enters the code; the CLI polls the
// token endpoint meanwhile. x/oauth2's DeviceAccessToken waits the interval
// the broker gives (5 s when it gives none) and adds 5 s at each slow_down
// (§3.5).
func deviceLogin(ctx context.Context, o *Options) (*Result, error) {
	endpoint := o.Broker.Metadata.DeviceAuthorizationEndpoint
	if endpoint == "" {
		return nil, errors.New("the broker does not offer device login (its discovery document has no device_authorization_endpoint); log in without --device (with --no-browser if this host has no browser)")
	}
	conf := o.oauth2Config()
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("device authorization at %s: %w", endpoint, err)
	}
	// The verification URIs go to the terminal and a browser: only absolute
	// https URLs (or http on loopback) may, and a user code is printable
	// text without control characters.
	verify, err := browser.CheckURL(da.VerificationURI)
	if err != nil {
		return nil, fmt.Errorf("the broker's verification_uri: %w", err)
	}
	if !printableCode(da.UserCode) {
		return nil, errors.New("the broker's user_code is not printable text: log in without --device")
	}
	o.Tracef("device authorization at %s: device code %s, user code shown, verification URI %s",
		endpoint, redact.Secret(da.DeviceCode), verify)
	_, _ = fmt.Fprintf(o.Prompt, "To log in, open %s on any device and enter the code %s\n", verify, da.UserCode)
	open := verify
	if da.VerificationURIComplete != "" {
		complete, err := browser.CheckURL(da.VerificationURIComplete)
		if err != nil {
			_, _ = fmt.Fprintf(o.Prompt, "pbench-auth: ignored the broker's verification_uri_complete: %v\n", err)
		} else {
			open = complete
			_, _ = fmt.Fprintf(o.Prompt, "(or open %s, which carries the code)\n", complete)
		}
	}
	_, _ = fmt.Fprintf(o.Prompt, "Waiting up to %s...\n", o.Timeout)
	if o.Browser != nil {
		if err := o.Browser(open); err != nil {
			_, _ = fmt.Fprintf(o.Prompt, "pbench-auth: could not open a browser: %v\n", err)
		}
	}
	interval := da.Interval
	if interval <= 0 {
		interval = 5
	}
	o.Tracef("polling %s every %ds until the code is entered", conf.Endpoint.TokenURL, interval)
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return nil, fmt.Errorf("device login: %w", err)
	}
	return o.result(ctx, tok, conf.Scopes, "")
}
