#!/usr/bin/env bash
# The report in a real browser: renders a report.html with headless Chromium at 1400 px (a
# desktop screen) and 420 px (a phone), fails if the page is wider than the window at either
# width, or if any element on it scrolls (or clips) sideways inside its own frame: a table, a
# chart, a code block. Either way the reader would have to scroll sideways. Saves a screenshot
# of each width.
#
#   tests/report/check.sh [REPORT_HTML] [OUT_DIR]
#     REPORT_HTML  default reports/latest/report.html
#     OUT_DIR      where the screenshots go, default target/report-check
#
# Installs Debian's `chromium` when no Chromium is on PATH (needs root or sudo). The page is
# never changed: a copy with a measuring script appended is rendered from a temp folder (the
# report is self-contained: its CSS and charts are inline).
set -euo pipefail

report=${1:-reports/latest/report.html}
out=${2:-target/report-check}
[ -f "$report" ] || { echo "report-check: no report at $report (run \`make audit\` first)" >&2; exit 2; }

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "report-check: installing Debian's chromium" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
    browser=$(command -v chromium)
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Chromium's headless window is at least 500 px wide, so each width is rendered as a frame of
# exactly that width inside a harness page (media queries inside a frame see the frame's width,
# as a phone's browser would show its own). The measuring copy of the page reports, after layout,
# its width against the frame's and the elements that stick out; the harness writes that into
# its DOM, which --dump-dom prints.
cp "$report" "$work/page.html"
cat >> "$work/page.html" <<'JS'
<script>
window.addEventListener("load", () => {
  const doc = document.documentElement, width = window.innerWidth;
  const name = el => el.tagName.toLowerCase() + (typeof el.className === "string" && el.className ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const wide = [], scrolling = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 1 && wide.length < 5) {
      wide.push(name(el) + " right=" + Math.round(box.right));
    }
    // An element whose content is wider than its box, in a frame that scrolls or clips it.
    if (el instanceof HTMLElement && el.scrollWidth > el.clientWidth + 1
        && /auto|scroll|hidden/.test(getComputedStyle(el).overflowX) && scrolling.length < 5) {
      scrolling.push(name(el) + " content=" + el.scrollWidth + " box=" + el.clientWidth);
    }
  }
  // Built from parts, so that the marker is not found in this script's own text.
  parent.postMessage("WIDTH" + "-CHECK page=" + doc.scrollWidth + " window=" + width + " wide=" + wide.join(", ")
    + " scrolling=" + scrolling.join(", ") + " END", "*");
});
</script>
JS

flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
       --disable-dev-shm-usage --force-device-scale-factor=1 --virtual-time-budget=10000)
status=0
for width in 1400 420; do
    height=$(( width == 1400 ? 1000 : 900 ))
    cat > "$work/harness-$width.html" <<HTML
<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0}iframe{border:0;display:block}</style></head>
<body><iframe src="page.html" width="$width" height="$height"></iframe>
<script>window.addEventListener("message", e => { const p = document.createElement("pre"); p.textContent = e.data; document.body.appendChild(p); });</script>
</body></html>
HTML
    dom=$("$browser" "${flags[@]}" --window-size="$(( width < 500 ? 500 : width )),$height" --dump-dom "file://$work/harness-$width.html" 2>/dev/null || true)
    line=$(printf '%s' "$dom" | grep -oE 'WIDTH-CHECK page=[0-9]+ window=[0-9]+ wide=[^<]* scrolling=[^<]* END' | head -n 1 || true)
    if [ -z "$line" ]; then
        echo "report-check: ${width} px: the browser did not render the page" >&2
        status=1
        continue
    fi
    page=$(printf '%s' "$line" | sed -E 's/.*page=([0-9]+).*/\1/')
    window=$(printf '%s' "$line" | sed -E 's/.*window=([0-9]+).*/\1/')
    if [ "$window" -ne "$width" ]; then
        echo "report-check: ${width} px: rendered at ${window} px instead" >&2
        status=1
    fi
    # The screenshot shows the report itself (no measuring script) in a frame of that width.
    shot_height=$(( height * 2 ))
    sed -e 's/page.html/report.html/' -e "s/height=\"$height\"/height=\"$shot_height\"/" "$work/harness-$width.html" > "$work/shot-$width.html"
    cp "$report" "$work/report.html"
    shot="$out/report-${width}px.png"
    "$browser" "${flags[@]}" --window-size="$width,$shot_height" --screenshot="$shot" "file://$work/shot-$width.html" >/dev/null 2>&1 || true
    scrolling=$(printf '%s' "$line" | sed -E 's/.* scrolling=(.*) END/\1/')
    if [ "$page" -gt "$window" ]; then
        echo "report-check: ${width} px: FAIL, the page is ${page} px wide in a ${window} px window (scrolls sideways); sticking out: $(printf '%s' "$line" | sed -E 's/.*wide=(.*) scrolling=.*/\1/')" >&2
        status=1
    elif [ -n "$scrolling" ]; then
        echo "report-check: ${width} px: FAIL, elements scroll sideways inside the page: $scrolling" >&2
        status=1
    else
        echo "report-check: ${width} px: ok, page ${page} px in a ${window} px window, no element scrolls sideways"
    fi
    echo "report-check: screenshot $shot"
done
exit $status
