package brokerconf

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/edgegw/edgegw/gateway/authorizer"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/rules"
)

// CompileRules compiles the config's `rules:` with the rules engine. Every
// problem is reported as a config error at the rule's line, with the field
// and, for SQL, the line:column inside the statement:
//
//	edgegw.yaml:41: rules[0].sql: SQL 1:27: unknown function "foo"
//
// The set is nil when any rule does not compile: the daemon refuses the whole
// set (at start and on reload), so a rule never silently goes missing.
func CompileRules(cfg *config.Config) (*rules.Set, error) {
	set, err := rules.Compile(cfg.Rules)
	if err == nil {
		return set, nil
	}
	var out config.Error
	for _, e := range flatten(err) {
		var re *rules.RuleError
		if !errors.As(e, &re) {
			out.Errors = append(out.Errors, &config.FieldError{File: cfg.File, Path: "rules", Msg: e.Error()})
			continue
		}
		path := fmt.Sprintf("rules[%d]", re.Index)
		if re.Field != "" {
			path += "." + re.Field
		}
		msg := re.Err.Error()
		var se *rules.SQLError
		if errors.As(re.Err, &se) {
			msg = fmt.Sprintf("SQL %s: %s", se.Pos, se.Msg)
		}
		line := cfg.Line(path)
		out.Errors = append(out.Errors, &config.FieldError{File: cfg.File, Line: line, Path: path, Msg: msg})
	}
	return nil, &out
}

// flatten unpacks errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Authorizer converts a listener's `authorizer:` section; the authorizer
// applies its defaults to what is left out.
func Authorizer(a *config.Authorizer) authorizer.Config {
	out := authorizer.Config{URL: a.URL, Command: append([]string(nil), a.Command...), Timeout: a.Timeout.D(),
		Rate: float64(a.Rate), Burst: a.Burst, MaxConcurrent: a.MaxConcurrent}
	if ts := a.TokenSigning; ts != nil {
		out.TokenSigning = &authorizer.TokenSigning{TokenKeyName: ts.TokenKeyName, PublicKeys: append([]string(nil), ts.PublicKeys...)}
	}
	return out
}

// CheckAuthorizers builds every listener's authorizer as the daemon would
// (validation and the token signing keys), reporting problems at the
// listener's authorizer line. It calls no authorizer.
func CheckAuthorizers(cfg *config.Config) error {
	var out config.Error
	for i, l := range cfg.Listeners {
		if l.Authorizer == nil {
			continue
		}
		p := fmt.Sprintf("listeners[%d].authorizer", i)
		ac := Authorizer(l.Authorizer)
		err := broker.AuthorizerFits(ac, Limits(cfg.Limits))
		if err == nil {
			_, err = authorizer.New(ac, slog.New(slog.DiscardHandler))
		}
		for _, e := range flatten(err) {
			if e != nil {
				out.Errors = append(out.Errors, &config.FieldError{File: cfg.File, Line: cfg.Line(p), Path: p, Msg: e.Error()})
			}
		}
	}
	if len(out.Errors) == 0 {
		return nil
	}
	return &out
}
