//! Text contrast from rendered styles (WCAG 2.x): the page reports, for every visible element
//! with its own text, the computed text colour and the background colours from the element up
//! to the root; we composite them and compute the contrast ratio.

use serde_json::Value;

/// Collects `[{text, color, backgrounds: [element, parent, …, html]}]` for visible text.
pub const COLLECT_TEXT_COLORS: &str = r#"
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const own = Array.from(el.childNodes)
    .filter(n => n.nodeType === Node.TEXT_NODE)
    .map(n => n.textContent.trim())
    .join(' ').trim();
  if (!own) continue;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  if (style.visibility === 'hidden' || style.display === 'none' || box.width === 0 || box.height === 0) continue;
  const backgrounds = [];
  for (let n = el; n; n = n.parentElement) backgrounds.push(getComputedStyle(n).backgroundColor);
  out.push({text: own.slice(0, 40), tag: el.tagName, color: style.color, backgrounds});
}
return out;
"#;

/// An sRGB colour with alpha (channels 0–255, alpha 0–1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rgba {
    pub r: f64,
    pub g: f64,
    pub b: f64,
    pub a: f64,
}

/// Parses `rgb(r, g, b)` / `rgba(r, g, b, a)` (also the space-separated form).
pub fn parse(css: &str) -> Option<Rgba> {
    let inner = css
        .trim()
        .strip_prefix("rgba(")
        .or_else(|| css.trim().strip_prefix("rgb("))?
        .strip_suffix(')')?;
    let parts: Vec<f64> = inner
        .split([',', ' ', '/'])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [r, g, b] => Some(Rgba { r, g, b, a: 1.0 }),
        [r, g, b, a] => Some(Rgba { r, g, b, a }),
        _ => None,
    }
}

/// `top` drawn over the opaque `bottom`.
pub fn over(top: Rgba, bottom: Rgba) -> Rgba {
    let mix = |t: f64, b: f64| t * top.a + b * (1.0 - top.a);
    Rgba {
        r: mix(top.r, bottom.r),
        g: mix(top.g, bottom.g),
        b: mix(top.b, bottom.b),
        a: 1.0,
    }
}

/// WCAG relative luminance of an opaque colour.
pub fn luminance(c: Rgba) -> f64 {
    let channel = |v: f64| {
        let s = v / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)
}

/// WCAG contrast ratio of two opaque colours (1–21).
pub fn ratio(a: Rgba, b: Rgba) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// The opaque background behind an element: its stack of backgrounds composited from the root
/// (over `canvas`, the page's base colour) up to the element.
pub fn effective_background(stack: &[Rgba], canvas: Rgba) -> Rgba {
    stack
        .iter()
        .rev()
        .fold(canvas, |below, layer| over(*layer, below))
}

/// One text element's contrast.
#[derive(Debug)]
pub struct Measured {
    pub text: String,
    pub ratio: f64,
    pub foreground: Rgba,
    pub background: Rgba,
}

/// The contrast of every element the page script reported; `canvas` is the colour under
/// everything (white in light mode, the dark canvas otherwise).
pub fn measure(report: &Value, canvas: Rgba) -> Vec<Measured> {
    report
        .as_array()
        .expect("an array of text elements")
        .iter()
        .map(|item| {
            let color = parse(item["color"].as_str().unwrap_or_default())
                .unwrap_or_else(|| panic!("unparsed colour in {item}"));
            let stack: Vec<Rgba> = item["backgrounds"]
                .as_array()
                .expect("backgrounds")
                .iter()
                .map(|b| {
                    parse(b.as_str().unwrap_or_default())
                        .unwrap_or_else(|| panic!("unparsed background in {item}"))
                })
                .collect();
            let background = effective_background(&stack, canvas);
            let foreground = over(color, background);
            Measured {
                text: format!(
                    "{} <{}>",
                    item["text"].as_str().unwrap_or_default(),
                    item["tag"].as_str().unwrap_or_default()
                ),
                ratio: ratio(foreground, background),
                foreground,
                background,
            }
        })
        .collect()
}

/// The checks of the functions above, run as their own trial.
pub fn self_check() {
    let white = parse("rgb(255, 255, 255)").unwrap();
    let black = parse("rgba(0, 0, 0, 1)").unwrap();
    assert!((ratio(white, black) - 21.0).abs() < 1e-9);
    assert!((ratio(white, white) - 1.0).abs() < 1e-9);
    // #767676 on white is the classic 4.54:1.
    let grey = parse("rgb(118 118 118)").unwrap();
    assert!((ratio(grey, white) - 4.54).abs() < 0.01);
    let half = parse("rgba(0, 0, 0, 0.5)").unwrap();
    let mixed = over(half, white);
    assert!((mixed.r - 127.5).abs() < 1e-9);
    let transparent = parse("rgba(0, 0, 0, 0)").unwrap();
    assert_eq!(
        effective_background(&[transparent, transparent], white),
        white
    );
    assert_eq!(effective_background(&[black, white], grey), black);
    assert_eq!(parse("color(srgb 1 0 0)"), None);
}
