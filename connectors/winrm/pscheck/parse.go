package pscheck

import (
	"fmt"
	"strings"
	"unicode"
)

// Script is what Parse finds in a constant PowerShell template: every command
// invocation, the functions the script defines, and the hashtables assigned
// to variables (so that a splatted call can be checked like a named one).
type Script struct {
	// Invocations are the commands in source order, nested ones (inside
	// parentheses, script blocks, subexpressions) included.
	Invocations []Invocation
	// Functions are the script's own functions by lower-case name.
	Functions map[string]*Function
	// Hashtables are literal hashtables assigned with "$name = @{...}", by
	// lower-case variable name. A later assignment replaces an earlier one.
	Hashtables map[string][]Entry
}

// Function is a function the script defines, with its parameter names.
type Function struct {
	Name   string
	Params []string
	Line   int
}

// Invocation is one command call.
type Invocation struct {
	// Name is the command name as written.
	Name string
	// Line is the 1-based line of the command name.
	Line int
	// Column is the 1-based column of the command name.
	Column int
	// Elements are the parameter names and arguments in order.
	Elements []Element
	// Text is the source line the command starts on, trimmed: PowerShell
	// quotes it in its error position.
	Text string
}

// Element is one parameter token (-Name or -Name:value), one argument, or one
// splatted variable (@params) of an invocation.
type Element struct {
	// Param is the parameter name without the dash; empty for an argument.
	Param string
	// Colon is true for -Name:value; Arg then holds the value.
	Colon bool
	// Splat is the variable name of @name; empty otherwise.
	Splat string
	// Arg is the argument (or the colon value).
	Arg Arg
}

// Arg is one argument value. Literal arguments (a bare word, a number, a
// quoted string without subexpressions) carry their values; anything computed
// at run time (variables, expressions) does not.
type Arg struct {
	// Literal reports whether every value is known at parse time.
	Literal bool
	// Values are the literal values; more than one for "A, B".
	Values []string
	// Text is the argument's source text.
	Text string
}

// Entry is one key of a literal hashtable.
type Entry struct {
	Key string
	Arg Arg
}

// ParseError is a template the tokenizer cannot read to its end.
type ParseError struct {
	Line    int
	Message string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// keywords are PowerShell's language keywords: at the start of a statement
// they are never commands.
var keywords = map[string]bool{
	"begin": true, "break": true, "catch": true, "class": true, "continue": true, "data": true, "default": true,
	"define": true, "do": true, "dynamicparam": true, "else": true, "elseif": true, "end": true,
	"enum": true, "exit": true, "filter": true, "finally": true, "for": true, "foreach": true,
	"from": true, "function": true, "if": true, "in": true, "param": true, "process": true,
	"return": true, "switch": true, "throw": true, "trap": true, "try": true, "until": true,
	"using": true, "var": true, "while": true, "workflow": true,
}

// Parse reads a constant template. It is a tokenizer for the subset of
// PowerShell the templates use (comments, single- and double-quoted strings
// and here-strings, variables, $(...) / @(...) / (...) subexpressions, script
// blocks, hashtables, pipelines, -Param value, -Param:value, @splat), not a
// full grammar: a construct it cannot read is a ParseError, never a silent
// skip.
func Parse(script string) (*Script, error) {
	p := &parser{src: []rune(strings.TrimPrefix(script, "\ufeff")), line: 1,
		out: &Script{Functions: map[string]*Function{}, Hashtables: map[string][]Entry{}}}
	p.lines = strings.Split(string(p.src), "\n")
	if err := p.statements(0); err != nil {
		return nil, err
	}
	if p.pos < len(p.src) {
		return nil, p.errorf("Unexpected token '%c' in expression or statement.", p.src[p.pos])
	}
	return p.out, nil
}

type parser struct {
	src   []rune
	pos   int
	line  int
	lines []string
	out   *Script
}

func (p *parser) errorf(format string, args ...any) *ParseError {
	return &ParseError{Line: p.line, Message: fmt.Sprintf(format, args...)}
}

func (p *parser) peek(off int) rune {
	if p.pos+off < len(p.src) {
		return p.src[p.pos+off]
	}
	return 0
}

// column is the 1-based column of the current position.
func (p *parser) column() int {
	col := 1
	for i := p.pos - 1; i >= 0 && p.src[i] != '\n'; i-- {
		col++
	}
	return col
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) advance() rune {
	r := p.src[p.pos]
	p.pos++
	if r == '\n' {
		p.line++
	}
	return r
}

// blanks skips spaces, tabs and comments; with newlines it skips line ends too.
func (p *parser) blanks(newlines bool) error {
	for !p.eof() {
		r := p.peek(0)
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\f' || r == '\u00a0':
			p.advance()
		case r == '\n' && newlines:
			p.advance()
		case r == '`' && p.peek(1) == '\n':
			p.advance()
			p.advance()
		case r == '`' && p.peek(1) == '\r' && p.peek(2) == '\n':
			p.advance()
			p.advance()
			p.advance()
		case r == '<' && p.peek(1) == '#':
			start := p.line
			p.pos += 2
			for !p.eof() && (p.peek(0) != '#' || p.peek(1) != '>') {
				p.advance()
			}
			if p.eof() {
				return &ParseError{Line: start, Message: "The string is missing the terminator: #>."}
			}
			p.pos += 2
		case r == '#':
			for !p.eof() && p.peek(0) != '\n' {
				p.advance()
			}
		default:
			return nil
		}
	}
	return nil
}

// statements reads statements until the closing rune (')' or '}', 0 for the
// end of the script), which it leaves unread.
func (p *parser) statements(closing rune) error {
	for {
		if err := p.blanks(true); err != nil {
			return err
		}
		for p.peek(0) == ';' {
			p.advance()
			if err := p.blanks(true); err != nil {
				return err
			}
		}
		if p.eof() {
			if closing != 0 {
				return p.errorf("Missing closing '%c' in statement block or type definition.", closing)
			}
			return nil
		}
		if r := p.peek(0); r == closing || (closing != 0 && (r == ')' || r == '}')) {
			if r != closing {
				return p.errorf("Unexpected token '%c' in expression or statement.", r)
			}
			return nil
		}
		if err := p.statement(); err != nil {
			return err
		}
	}
}

// statement reads one statement: a keyword construct or a pipeline.
func (p *parser) statement() error {
	if isWordStart(p.peek(0)) {
		save, saveLine := p.pos, p.line
		w := p.bareWord()
		lw := strings.ToLower(w)
		if keywords[lw] && p.wordEnds() {
			switch lw {
			case "function", "filter":
				return p.function()
			case "param":
				if err := p.blanks(false); err != nil {
					return err
				}
				if p.peek(0) != '(' {
					return p.errorf("Missing '(' after 'param'.")
				}
				_, err := p.paramList()
				return err
			case "return", "throw", "exit":
				if err := p.blanks(false); err != nil {
					return err
				}
				if p.atPipelineEnd() {
					return nil
				}
				return p.pipeline()
			case "break", "continue":
				return p.blanks(false)
			default:
				// if/elseif/else/foreach/while/switch/try/catch/finally/do:
				// the rest of the line is conditions in (...) and blocks in
				// {...}, which the expression reader descends into.
				return p.expression()
			}
		}
		p.pos, p.line = save, saveLine
	}
	// An assignment of a literal hashtable is remembered for splatting.
	if p.peek(0) == '$' {
		save, saveLine := p.pos, p.line
		name := p.variableName()
		if err := p.blanks(false); err != nil {
			return err
		}
		if name != "" && p.peek(0) == '=' && p.peek(1) != '=' {
			p.advance()
			if err := p.blanks(false); err != nil {
				return err
			}
			if p.peek(0) == '@' && p.peek(1) == '{' {
				entries, err := p.hashtable()
				if err != nil {
					return err
				}
				p.out.Hashtables[strings.ToLower(name)] = entries
				return p.blanks(false)
			}
			return p.pipeline()
		}
		p.pos, p.line = save, saveLine
	}
	return p.pipeline()
}

// wordEnds reports whether the bare word just read is a whole token.
func (p *parser) wordEnds() bool {
	r := p.peek(0)
	return r == 0 || r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == '(' || r == '{' || r == ';' || r == '$'
}

func (p *parser) atPipelineEnd() bool {
	r := p.peek(0)
	return r == 0 || r == '\n' || r == ';' || r == ')' || r == '}' || r == '|'
}

// pipeline reads pipeline elements separated by '|'.
func (p *parser) pipeline() error {
	for {
		if err := p.blanks(false); err != nil {
			return err
		}
		switch r := p.peek(0); {
		case isWordStart(r) && !isDigit(r):
			if err := p.command(); err != nil {
				return err
			}
		case (r == '&' || r == '.') && (p.peek(1) == ' ' || p.peek(1) == '\t'):
			// "& $block args" / ". $script": the command is computed at run
			// time, so only its arguments' own nested commands are checked.
			p.advance()
			if err := p.blanks(false); err != nil {
				return err
			}
			if _, _, err := p.operand(true); err != nil {
				return err
			}
			if err := p.arguments(&Invocation{}); err != nil {
				return err
			}
		default:
			if err := p.expression(); err != nil {
				return err
			}
		}
		if err := p.blanks(false); err != nil {
			return err
		}
		if p.peek(0) != '|' || p.peek(1) == '|' {
			return nil
		}
		p.advance()
		if err := p.blanks(true); err != nil {
			return err
		}
	}
}

// command reads a command name and its arguments up to the end of the
// pipeline element.
func (p *parser) command() error {
	line, col := p.line, p.column()
	name := p.bareWord()
	inv := Invocation{Name: name, Line: line, Column: col, Text: strings.TrimRight(p.lines[line-1], "\r")}
	if err := p.arguments(&inv); err != nil {
		return err
	}
	p.out.Invocations = append(p.out.Invocations, inv)
	return nil
}

// arguments reads a command's parameters and arguments up to the end of the
// pipeline element into inv. Redirections (2>&1, > file, 2>$null) are read
// and left out: they are not parameters.
func (p *parser) arguments(inv *Invocation) error {
	for {
		if err := p.blanks(false); err != nil {
			return err
		}
		if p.atPipelineEnd() {
			break
		}
		r := p.peek(0)
		switch {
		case (r == '-' || r == '\u2013') && isParamStart(p.peek(1)):
			p.advance()
			start := p.pos
			for !p.eof() && isParamChar(p.peek(0)) {
				p.advance()
			}
			el := Element{Param: string(p.src[start:p.pos])}
			if p.peek(0) == ':' {
				p.advance()
				arg, err := p.argument()
				if err != nil {
					return err
				}
				el.Colon, el.Arg = true, arg
			}
			inv.Elements = append(inv.Elements, el)
		case r == '@' && isVarChar(p.peek(1)):
			p.advance()
			start := p.pos
			for !p.eof() && isVarChar(p.peek(0)) {
				p.advance()
			}
			inv.Elements = append(inv.Elements, Element{Splat: string(p.src[start:p.pos])})
		case r == '>' || ((isDigit(r) || r == '*') && p.peek(1) == '>'):
			if r != '>' {
				p.advance()
			}
			p.advance()
			if p.peek(0) == '>' {
				p.advance()
			}
			if p.peek(0) == '&' && isDigit(p.peek(1)) { // 2>&1
				p.pos += 2
				continue
			}
			if err := p.blanks(false); err != nil {
				return err
			}
			if _, err := p.argument(); err != nil {
				return err
			}
		default:
			arg, err := p.argument()
			if err != nil {
				return err
			}
			inv.Elements = append(inv.Elements, Element{Arg: arg})
		}
	}
	return nil
}

// argument reads one argument in command mode, with ", b" continuations.
func (p *parser) argument() (Arg, error) {
	start := p.pos
	arg := Arg{Literal: true}
	for {
		v, lit, err := p.operand(true)
		if err != nil {
			return Arg{}, err
		}
		arg.Literal = arg.Literal && lit
		if lit {
			arg.Values = append(arg.Values, v)
		}
		save, saveLine := p.pos, p.line
		if err := p.blanks(false); err != nil {
			return Arg{}, err
		}
		if p.peek(0) != ',' {
			p.pos, p.line = save, saveLine
			break
		}
		p.advance()
		if err := p.blanks(true); err != nil {
			return Arg{}, err
		}
	}
	if !arg.Literal {
		arg.Values = nil
	}
	arg.Text = strings.TrimSpace(string(p.src[start:p.pos]))
	return arg, nil
}

// operand reads one value: a string, a variable with its member accesses, a
// parenthesised or braced construct, a type literal with what follows, or
// (in command mode) a bare word. It returns the literal value if it has one.
func (p *parser) operand(commandMode bool) (string, bool, error) {
	r := p.peek(0)
	var (
		val string
		lit bool
		err error
	)
	switch {
	case r == '\'' || r == '"' || r == '\u2018' || r == '\u201c':
		val, lit, err = p.str()
	case r == '@' && (p.peek(1) == '\'' || p.peek(1) == '"'):
		val, lit, err = p.hereString()
	case r == '@' && p.peek(1) == '{':
		_, err = p.hashtable()
	case r == '@' && p.peek(1) == '(':
		p.advance()
		err = p.group('(', ')')
	case r == '$' && p.peek(1) == '(':
		p.advance()
		err = p.group('(', ')')
	case r == '$':
		if p.variableName() == "" {
			return "", false, p.errorf("Variable reference is not valid.")
		}
	case r == '(':
		err = p.group('(', ')')
	case r == '{':
		err = p.group('{', '}')
	case r == '[':
		err = p.typeLiteral()
		if err == nil && !commandMode {
			return "", false, p.postfix()
		}
		if err == nil && !p.atArgEnd() {
			_, _, err = p.operand(commandMode)
		}
		return "", false, err
	case commandMode && !p.atArgEnd():
		start := p.pos
		for !p.eof() && !p.atArgEnd() && !strings.ContainsRune("'\"$(){}@;,|", p.peek(0)) {
			p.advance()
		}
		if p.pos == start {
			return "", false, p.errorf("Unexpected token '%c' in expression or statement.", p.peek(0))
		}
		val, lit = string(p.src[start:p.pos]), true
		if !p.atArgEnd() && p.peek(0) != ',' {
			// A bare word glued to something computed ("a$b") is not literal.
			if _, _, err := p.operand(true); err != nil {
				return "", false, err
			}
			lit = false
		}
		return val, lit, nil
	case isDigit(r) || isWordStart(r):
		start := p.pos
		for !p.eof() && (isVarChar(p.peek(0)) || p.peek(0) == '.' && isDigit(p.peek(1))) {
			p.advance()
		}
		val, lit = string(p.src[start:p.pos]), true
	default:
		return "", false, p.errorf("Unexpected token '%c' in expression or statement.", r)
	}
	if err != nil {
		return "", false, err
	}
	if p.hasPostfix() {
		return "", false, p.postfix()
	}
	return val, lit, nil
}

func (p *parser) atArgEnd() bool {
	r := p.peek(0)
	return r == 0 || r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == ';' || r == '|' || r == ')' || r == '}'
}

func (p *parser) hasPostfix() bool {
	r := p.peek(0)
	return (r == '.' && (isWordStart(p.peek(1)) || p.peek(1) == '\'' || p.peek(1) == '"')) ||
		r == '[' || (r == ':' && p.peek(1) == ':') || r == '('
}

// postfix reads member accesses, method calls and indexes glued to a value.
func (p *parser) postfix() error {
	for {
		switch r := p.peek(0); {
		case r == '.' && (isWordStart(p.peek(1)) || p.peek(1) == '\'' || p.peek(1) == '"'):
			p.advance()
			if p.peek(0) == '\'' || p.peek(0) == '"' {
				if _, _, err := p.str(); err != nil {
					return err
				}
			} else {
				p.bareIdent()
			}
		case r == ':' && p.peek(1) == ':':
			p.pos += 2
			p.bareIdent()
		case r == '[':
			if err := p.group('[', ']'); err != nil {
				return err
			}
		case r == '(':
			if err := p.group('(', ')'); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// expression reads an expression statement (operators, operands, keyword
// constructs with their conditions and blocks) to the end of the statement.
// A newline ends it unless an operator, '(' or ',' leaves it open.
func (p *parser) expression() error {
	open := true // an operand is expected
	for {
		if err := p.blanks(false); err != nil {
			return err
		}
		r := p.peek(0)
		switch {
		case r == 0 || r == ';' || r == ')' || r == '}' || (r == '|' && p.peek(1) != '|'):
			return nil
		case r == '\n':
			if !open {
				return nil
			}
			p.advance()
		case r == '=' && p.peek(1) != '=':
			// Assignment: the right-hand side is a pipeline.
			p.advance()
			return p.pipeline()
		case (r == '+' || r == '*' || r == '/') && p.peek(1) == '=':
			p.pos += 2
			return p.pipeline()
		case r == '-' && isParamStart(p.peek(1)):
			p.advance()
			for !p.eof() && isParamChar(p.peek(0)) {
				p.advance()
			}
			open = true
		case r == '!' || r == '+' || r == '-' || r == '*' || r == '/' || r == ',' || r == '>' || r == '<' || r == '=' || (r == '|' && p.peek(1) == '|') || (r == '&' && p.peek(1) == '&'):
			p.advance()
			if r == '|' || r == '&' {
				p.advance()
			}
			open = true
		case r == '{':
			if err := p.group('{', '}'); err != nil {
				return err
			}
			open = false
		case isWordStart(r) && !isDigit(r):
			save, saveLine := p.pos, p.line
			w := strings.ToLower(p.bareWord())
			switch {
			case w == "in":
				// foreach ($x in <pipeline>)
				if err := p.pipeline(); err != nil {
					return err
				}
				open = false
			case keywords[w]:
				open = true
			case open:
				// A command where an operand is expected, as after "in" or a
				// keyword: read it as a pipeline.
				p.pos, p.line = save, saveLine
				if err := p.pipeline(); err != nil {
					return err
				}
				open = false
			default:
				return p.errorf("Unexpected token '%s' in expression or statement.", w)
			}
		default:
			if _, _, err := p.operand(false); err != nil {
				return err
			}
			open = false
		}
	}
}

// group reads a bracketed construct: (...) and {...} hold statements, [...]
// an index expression.
func (p *parser) group(openR, closeR rune) error {
	start := p.line
	p.advance()
	var err error
	if openR == '[' {
		err = p.statementsUntil(']')
	} else {
		err = p.statements(closeR)
	}
	if err != nil {
		return err
	}
	if p.peek(0) != closeR {
		return &ParseError{Line: start, Message: fmt.Sprintf("Missing closing '%c'.", closeR)}
	}
	p.advance()
	return nil
}

// statementsUntil reads the expression inside an index: [ ... ].
func (p *parser) statementsUntil(closeR rune) error {
	for {
		if err := p.blanks(true); err != nil {
			return err
		}
		if p.eof() || p.peek(0) == closeR {
			return nil
		}
		if err := p.expressionIn(closeR); err != nil {
			return err
		}
	}
}

func (p *parser) expressionIn(closeR rune) error {
	if err := p.blanks(true); err != nil {
		return err
	}
	r := p.peek(0)
	if r == closeR || r == ',' || r == '-' || r == '+' {
		p.advance()
		if r == '-' {
			for !p.eof() && isParamChar(p.peek(0)) {
				p.advance()
			}
		}
		return nil
	}
	_, _, err := p.operand(false)
	return err
}

// typeLiteral reads [TypeName] or [Generic[Arg,Arg]].
func (p *parser) typeLiteral() error {
	depth := 0
	start := p.line
	for !p.eof() {
		switch p.advance() {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return nil
			}
		case '\n':
			return &ParseError{Line: start, Message: "Missing ] at end of type token."}
		}
	}
	return &ParseError{Line: start, Message: "Missing ] at end of type token."}
}

// hashtable reads @{ key = value; ... } and returns its entries.
func (p *parser) hashtable() ([]Entry, error) {
	start := p.line
	p.pos += 2
	var entries []Entry
	for {
		if err := p.blanks(true); err != nil {
			return nil, err
		}
		for p.peek(0) == ';' {
			p.advance()
			if err := p.blanks(true); err != nil {
				return nil, err
			}
		}
		if p.eof() {
			return nil, &ParseError{Line: start, Message: "Missing closing '}' in statement block or type definition."}
		}
		if p.peek(0) == '}' {
			p.advance()
			return entries, nil
		}
		var key string
		switch r := p.peek(0); {
		case r == '\'' || r == '"':
			k, _, err := p.str()
			if err != nil {
				return nil, err
			}
			key = k
		case isWordStart(r):
			key = p.bareIdent()
		default:
			return nil, p.errorf("Missing key before '=' in hash literal.")
		}
		if err := p.blanks(false); err != nil {
			return nil, err
		}
		if p.peek(0) != '=' {
			return nil, p.errorf("Missing '=' operator after key in hash literal.")
		}
		p.advance()
		if err := p.blanks(true); err != nil {
			return nil, err
		}
		// A quoted string or a number alone on the line is a literal value;
		// anything else is a pipeline (a bare word there is a command call,
		// exactly as PowerShell reads it).
		valStart, valLine := p.pos, p.line
		entry := Entry{Key: key}
		if r := p.peek(0); r == '\'' || r == '"' || isDigit(r) {
			v, lit, err := p.operand(false)
			if err != nil {
				return nil, err
			}
			if err := p.blanks(false); err != nil {
				return nil, err
			}
			if lit && (p.peek(0) == '\n' || p.peek(0) == ';' || p.peek(0) == '}') {
				entry.Arg = Arg{Literal: true, Values: []string{v}, Text: strings.TrimSpace(string(p.src[valStart:p.pos]))}
				entries = append(entries, entry)
				continue
			}
			p.pos, p.line = valStart, valLine
		}
		if err := p.pipeline(); err != nil {
			return nil, err
		}
		entry.Arg = Arg{Text: strings.TrimSpace(string(p.src[valStart:p.pos]))}
		entries = append(entries, entry)
	}
}

// function reads "function Name(params) { body }" or "function Name { param(...) body }".
func (p *parser) function() error {
	if err := p.blanks(false); err != nil {
		return err
	}
	line := p.line
	name := p.bareWord()
	if name == "" {
		return p.errorf("Missing function name after function keyword.")
	}
	fn := &Function{Name: name, Line: line}
	if err := p.blanks(false); err != nil {
		return err
	}
	if p.peek(0) == '(' {
		params, err := p.paramList()
		if err != nil {
			return err
		}
		fn.Params = params
		if err := p.blanks(false); err != nil {
			return err
		}
	}
	if p.peek(0) != '{' {
		return p.errorf("Missing function body in function declaration.")
	}
	// A param() block at the top of the body declares the parameters.
	save, saveLine := p.pos, p.line
	p.advance()
	if err := p.blanks(true); err != nil {
		return err
	}
	if strings.EqualFold(p.peekWord(), "param") {
		p.bareWord()
		if err := p.blanks(false); err != nil {
			return err
		}
		if p.peek(0) == '(' {
			params, err := p.paramList()
			if err != nil {
				return err
			}
			fn.Params = append(fn.Params, params...)
		}
	}
	p.pos, p.line = save, saveLine
	p.out.Functions[strings.ToLower(name)] = fn
	return p.group('{', '}')
}

// paramList reads "( [type]$A, [type]$B = default )" and returns the names.
func (p *parser) paramList() ([]string, error) {
	start := p.line
	p.advance()
	var names []string
	depth := 0
	expectName := true
	for {
		if err := p.blanks(true); err != nil {
			return nil, err
		}
		if p.eof() {
			return nil, &ParseError{Line: start, Message: "Missing ')' in function parameter list."}
		}
		switch r := p.peek(0); {
		case r == ')' && depth == 0:
			p.advance()
			return names, nil
		case r == '[':
			if err := p.typeLiteral(); err != nil {
				return nil, err
			}
		case r == '$' && expectName:
			names = append(names, p.variableName())
			expectName = false
		case r == ',' && depth == 0:
			p.advance()
			expectName = true
		case r == '=':
			p.advance()
			if _, _, err := p.operand(false); err != nil {
				return nil, err
			}
		default:
			if _, _, err := p.operand(false); err != nil {
				return nil, err
			}
		}
	}
}

// variableName reads $name, $scope:name, ${name} or $_ and returns the name.
func (p *parser) variableName() string {
	p.advance() // $
	if p.peek(0) == '{' {
		start := p.pos + 1
		for !p.eof() && p.peek(0) != '}' {
			p.advance()
		}
		name := string(p.src[start:p.pos])
		if !p.eof() {
			p.advance()
		}
		return name
	}
	start := p.pos
	for !p.eof() && (isVarChar(p.peek(0)) || (p.peek(0) == ':' && isVarChar(p.peek(1)) && p.pos > start)) {
		p.advance()
	}
	if p.pos == start && (p.peek(0) == '?' || p.peek(0) == '^' || p.peek(0) == '$') {
		p.advance()
	}
	return string(p.src[start:p.pos])
}

// str reads a single- or double-quoted string. A double-quoted string with a
// $ in it expands at run time: its $(...) parts are parsed as statements and
// it is not literal.
func (p *parser) str() (string, bool, error) {
	start := p.line
	q := p.advance()
	double := q == '"' || q == '\u201c'
	var b strings.Builder
	lit := true
	for {
		if p.eof() {
			return "", false, &ParseError{Line: start, Message: fmt.Sprintf("The string is missing the terminator: %c.", q)}
		}
		r := p.peek(0)
		switch {
		case isQuote(r, double):
			p.advance()
			if isQuote(p.peek(0), double) { // doubled quote is an escaped quote
				b.WriteRune(p.advance())
				continue
			}
			return b.String(), lit, nil
		case double && r == '`':
			p.advance()
			if !p.eof() {
				b.WriteRune(p.advance())
			}
		case double && r == '$' && p.peek(1) == '(':
			p.advance()
			if err := p.group('(', ')'); err != nil {
				return "", false, err
			}
			lit = false
		case double && r == '$' && (isVarChar(p.peek(1)) || p.peek(1) == '{'):
			p.variableName()
			lit = false
		default:
			b.WriteRune(p.advance())
		}
	}
}

func isQuote(r rune, double bool) bool {
	if double {
		return r == '"' || r == '\u201c' || r == '\u201d' || r == '\u201e'
	}
	return r == '\'' || r == '\u2018' || r == '\u2019' || r == '\u201a' || r == '\u201b'
}

// hereString reads @'...'@ or @"..."@ (the closing quote starts a line).
func (p *parser) hereString() (string, bool, error) {
	start := p.line
	p.advance()
	q := p.advance()
	for !p.eof() && p.peek(0) != '\n' {
		if p.peek(0) != ' ' && p.peek(0) != '\t' && p.peek(0) != '\r' {
			return "", false, p.errorf("No characters are allowed after a here-string header but before the end of the line.")
		}
		p.advance()
	}
	if p.eof() {
		return "", false, &ParseError{Line: start, Message: fmt.Sprintf("The string is missing the terminator: %c@.", q)}
	}
	p.advance()
	bodyStart := p.pos
	lit := true
	for !p.eof() {
		if p.peek(0) == '\n' || p.pos == bodyStart {
			at := p.pos
			if p.peek(0) == '\n' {
				at++
			}
			if at+1 < len(p.src) && p.src[at] == q && p.src[at+1] == '@' {
				body := string(p.src[bodyStart:p.pos])
				for p.pos < at+2 {
					p.advance()
				}
				return strings.TrimSuffix(body, "\r"), lit, nil
			}
		}
		if q == '"' && p.peek(0) == '$' && p.peek(1) == '(' {
			p.advance()
			if err := p.group('(', ')'); err != nil {
				return "", false, err
			}
			lit = false
			continue
		}
		if q == '"' && p.peek(0) == '$' && isVarChar(p.peek(1)) {
			lit = false
		}
		p.advance()
	}
	return "", false, &ParseError{Line: start, Message: fmt.Sprintf("The string is missing the terminator: %c@.", q)}
}

// bareWord reads a command-name-like word (letters, digits, '-', '_', '.', '\', ':').
func (p *parser) bareWord() string {
	start := p.pos
	for !p.eof() {
		r := p.peek(0)
		if isVarChar(r) || r == '-' || r == '.' || r == '\\' || (r == ':' && p.peek(1) != ':' && p.pos > start) {
			p.advance()
			continue
		}
		break
	}
	return string(p.src[start:p.pos])
}

// bareIdent reads a member or key name.
func (p *parser) bareIdent() string {
	start := p.pos
	for !p.eof() && isVarChar(p.peek(0)) {
		p.advance()
	}
	return string(p.src[start:p.pos])
}

func (p *parser) peekWord() string {
	save, saveLine := p.pos, p.line
	w := p.bareIdent()
	p.pos, p.line = save, saveLine
	return w
}

func isWordStart(r rune) bool { return r == '_' || unicode.IsLetter(r) || isDigit(r) }
func isDigit(r rune) bool     { return r >= '0' && r <= '9' }
func isVarChar(r rune) bool   { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
func isParamStart(r rune) bool {
	return r == '_' || r == '?' || unicode.IsLetter(r)
}
func isParamChar(r rune) bool { return isVarChar(r) || r == '?' }
