#!/usr/bin/env bash
# The browser check checked: tests/report/check.sh must pass a page that fits and fail a page
# that is wider than the window, and one where an element (a table frame, a chart) scrolls
# sideways inside a page that fits. Run by `make report-check` before it checks the report.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

page() { # NAME BODY
    printf '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><style>body{margin:0}</style></head><body>%s</body></html>\n' "$2" > "$work/$1.html"
}
page fits '<p>A page that fits any width.</p>'
page wide-page '<div style="width:1600px">wider than both windows</div>'
page scrolling-frame '<div style="overflow-x:auto"><div style="width:1600px">a frame that scrolls sideways</div></div>'

expect() { # pass|fail NAME
    if tests/report/check.sh "$work/$2.html" "$work/shots-$2" > "$work/$2.log" 2>&1; then got=pass; else got=fail; fi
    if [ "$got" != "$1" ]; then
        echo "report-check self-test: FAIL, $2.html should $1, it did not:" >&2
        cat "$work/$2.log" >&2
        exit 1
    fi
    echo "report-check self-test: $2.html: $got, as it should"
}
expect pass fits
expect fail wide-page
expect fail scrolling-frame
grep -q "the page is 1600 px wide" "$work/wide-page.log" || { echo "report-check self-test: FAIL, the page's width was not named" >&2; exit 1; }
grep -q "elements scroll sideways inside the page: div content=1600" "$work/scrolling-frame.log" || { echo "report-check self-test: FAIL, the scrolling frame was not named" >&2; exit 1; }
