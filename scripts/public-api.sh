#!/usr/bin/env bash
# Lists the public API of actix-mcp-auth from rustdoc's output, one item per line, sorted:
#
#   scripts/public-api.sh > api.txt            # builds the docs first (all user features)
#   scripts/public-api.sh --counts             # only the number of items of each kind
#
# Lines read `KIND PATH`: every item of rustdoc's "all items" page (struct, enum, trait, fn,
# type, const, macro, ...), then the members users can name on each type page: inherent
# methods (`method`), public fields (`field`), enum variants (`variant`) and trait methods
# (`trait-method`). Trait implementations (Debug, Clone, ...) are left out. `cargo public-api`
# would be more exact but needs a nightly toolchain; this needs only stable rustdoc and python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
counts=false
[[ "${1:-}" == "--counts" ]] && counts=true
target="${CARGO_TARGET_DIR:-$ROOT/target}"
log "cargo doc -p actix-mcp-auth --no-deps --features tracing-actix-web"
(cd "$ROOT" && cargo doc -q -p actix-mcp-auth --no-deps --features tracing-actix-web) >&2
docs="$target/doc/actix_mcp_auth"
[[ -f "$docs/all.html" ]] || die "no $docs/all.html"
listing="$(python3 - "$docs" <<'PY'
import html, re, sys
from pathlib import Path

docs = Path(sys.argv[1])
page = (docs / "all.html").read_text()
items = []
# all.html: <h3 id="structs">…</h3><ul class="all-items"><li><a href="store/struct.Store.html">store::Store</a></li>…
for section in re.finditer(r'<h3 id="([a-z-]+)"[^>]*>.*?</h3>\s*<ul class="all-items">(.*?)</ul>', page, re.S):
    for href, name in re.findall(r'<a href="([^"]+)">(.*?)</a>', section.group(2)):
        name = html.unescape(re.sub(r"<[^>]+>", "", name))
        kind = Path(href).name.split(".")[0]
        items.append(f"{kind} {name}")
        if kind not in ("struct", "enum", "trait", "union"):
            continue
        body = (docs / href).read_text()
        # Inherent members only: stop where the trait implementations begin.
        cut = re.search(r'id="(trait-implementations|synthetic-implementations|blanket-implementations|foreign-impls|implementors)"', body)
        inherent = body[: cut.start()] if cut else body
        for member, prefix in (("method", "method"), ("field", "structfield"), ("variant", "variant"), ("trait-method", "tymethod")):
            for m in sorted(set(re.findall(rf'id="{prefix}\.([A-Za-z0-9_]+)"', inherent))):
                if member == "trait-method" or kind != "trait" or member != "method":
                    items.append(f"{member} {name}::{m}")
                else:
                    items.append(f"provided-method {name}::{m}")
for line in sorted(set(items)):
    print(line)
PY
)"
if $counts; then
  echo "$listing" | cut -d' ' -f1 | sort | uniq -c | sort -rn
  echo "$listing" | wc -l | sed 's/^/ total /'
else
  echo "$listing"
fi
