#!/usr/bin/env python3
"""Lists functions longer than a limit (default 80 lines) in C++ sources.

Heuristic: a function body starts at a line ending in '{' whose brace depth
(outside namespaces, classes and structs) is the top level of a definition,
and ends at its matching '}'. Lambdas and blocks inside count toward their
enclosing function. Usage: scripts/long_functions.py [--max N] DIR...
--skip FILE (repeatable) leaves a file out. Exit status 1 if any function
is longer than the limit."""
import re
import sys
from pathlib import Path

CONTAINER = re.compile(r'^\s*(namespace\b|class\b|struct\b|enum\b|union\b|extern\s+"C")|^\s*(template\s*<.*>\s*)?(class|struct)\b')


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split('//')[0]


def long_functions(path, limit):
    lines = Path(path).read_text(errors='replace').splitlines()
    stack = []  # entries: ('container'|'function'|'block', start line)
    found = []
    pending = ''
    for n, raw in enumerate(lines, 1):
        line = strip(raw)
        pending = (pending + ' ' + line)[-400:]
        for ch in line:
            if ch == '{':
                inside_function = any(k == 'function' for k, _ in stack)
                if inside_function:
                    stack.append(('block', n))
                elif CONTAINER.search(pending.split(';')[-1].split('}')[-1]) and '(' not in pending.split(';')[-1].split('}')[-1].split('{')[0][-200:]:
                    stack.append(('container', n))
                elif '(' in pending.split(';')[-1].split('}')[-1] or ')' in pending:
                    stack.append(('function', n))
                else:
                    stack.append(('block', n))
                pending = ''
            elif ch == '}':
                if stack:
                    kind, start = stack.pop()
                    if kind == 'function' and not any(k == 'function' for k, _ in stack):
                        if n - start + 1 > limit:
                            found.append((path, start, n - start + 1, lines[start - 1].strip()))
                pending = ''
            elif ch == ';':
                pending = ''
    return found


def main(argv):
    limit, skip, dirs = 80, set(), []
    while argv:
        if argv[0] == '--max':
            limit, argv = int(argv[1]), argv[2:]
        elif argv[0] == '--skip':
            skip.add(str(Path(argv[1]))), argv.pop(0)
            argv.pop(0)
        else:
            dirs.append(argv.pop(0))
    bad = []
    for d in dirs:
        for p in sorted(Path(d).rglob('*.[ch]pp')):
            if str(p) not in skip:
                bad += long_functions(str(p), limit)
    for path, start, length, text in bad:
        print(f'{path}:{start}: {length} lines: {text[:90]}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
