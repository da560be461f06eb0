package doctor

import (
	"errors"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

func TestCACheckReportsTheCLIsCAs(t *testing.T) {
	env := Result{Name: "ca", Status: StatusOK, Message: "the system's CA certificates"}
	for _, tc := range []struct {
		name     string
		trust    func() (cmdutil.CATrust, error)
		want     Status
		msg, fix string
	}{
		{"flag", func() (cmdutil.CATrust, error) {
			return cmdutil.CATrust{Summary: "the system's CAs + 1 certificates from --ca-cert (ca.pem)"}, nil
		}, StatusOK, "trusted: the system's CAs + 1 certificates from --ca-cert (ca.pem)", ""},
		{"insecure", func() (cmdutil.CATrust, error) {
			return cmdutil.CATrust{Summary: "nothing", Insecure: true}, nil
		}, StatusWarn, "trusted: nothing", "drop --insecure-skip-tls-verify"},
		{"bad file", func() (cmdutil.CATrust, error) {
			return cmdutil.CATrust{}, errors.New("--ca-cert: cannot read the CA file")
		}, StatusFail, "cannot read the CA file", "PEM files of CA certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := withCLICAs(env, tc.trust)
			if r.Status != tc.want || !strings.Contains(r.Message, tc.msg) || !strings.Contains(r.Fix, tc.fix) {
				t.Fatalf("result %+v, want %s with %q and fix %q", r, tc.want, tc.msg, tc.fix)
			}
		})
	}
}
