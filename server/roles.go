package server

// This file: the --require-role rules (path prefix → role). Paths are read
// and compared by the path rule (pathrule.go).

import (
	"errors"
	"fmt"
	"strings"
)

// roleRule is one --require-role PATH_PREFIX=ROLE.
type roleRule struct {
	prefix pathPrefix
	role   string
}

func parseRoleRules(specs []string) ([]roleRule, error) {
	var errs []error
	var rules []roleRule
	for _, s := range specs {
		prefix, role, ok := strings.Cut(s, "=")
		if !ok || role == "" {
			errs = append(errs, fmt.Errorf("require-role %q: want PATH_PREFIX=ROLE, e.g. /api/v1/admin=ADMIN", s))
			continue
		}
		pp, err := parsePathPrefix(prefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("require-role %q: %w", s, err))
			continue
		}
		rules = append(rules, roleRule{prefix: pp, role: role})
	}
	return rules, errors.Join(errs...)
}
