package server

// This file: the --require-role rules (path prefix → role).

import (
	"errors"
	"fmt"
	"strings"
)

// roleRule is one --require-role PATH_PREFIX=ROLE.
type roleRule struct{ prefix, role string }

func parseRoleRules(specs []string) ([]roleRule, error) {
	var errs []error
	var rules []roleRule
	for _, s := range specs {
		prefix, role, ok := strings.Cut(s, "=")
		switch {
		case !ok || role == "":
			errs = append(errs, fmt.Errorf("require-role %q: want PATH_PREFIX=ROLE, e.g. /api/v1/admin=ADMIN", s))
		case !strings.HasPrefix(prefix, "/"):
			errs = append(errs, fmt.Errorf("require-role %q: the path prefix must start with /", s))
		default:
			rules = append(rules, roleRule{prefix: strings.TrimSuffix(prefix, "/"), role: role})
		}
	}
	return rules, errors.Join(errs...)
}

// matches reports whether path is the rule's prefix or below it.
func (r roleRule) matches(path string) bool {
	if r.prefix == "" {
		return true
	}
	return path == r.prefix || strings.HasPrefix(path, r.prefix) && path[len(r.prefix)] == '/'
}
