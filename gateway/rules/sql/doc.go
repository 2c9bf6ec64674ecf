// Package sql is the AWS IoT SQL language (version 2016-03-23) of the rules
// engine: the parser that compiles each expression to a closure, the
// evaluator of a statement on one message, the values with AWS's type
// tables and conversions, the payload's JSON values (read without building
// the document), the topic filter of FROM, and the built-in functions
// (funcs.go). Its leaves: the lexer (sql/lex), the JSON reader
// (internal/jsonscan), MD2 (internal/md2) and the date patterns
// (gateway/rules/timefmt). What a statement may say,
// and where the gateway refuses what AWS would accept, is in the doc of
// gateway/rules, the engine that uses it.
//
// Compile a statement once, then per message: NewCtx, Statement.Run,
// Ctx.Release. A *SQLError gives the line:column in the statement.
//
// It is pure: no I/O, no logging, no goroutines. It imports the standard
// library and its leaves only, never the engine (gateway/rules) or anything
// else of this module, mochi, badger, prometheus or paho.
package sql
