//! A linear-time guard against YAML that nests flow collections (`[ ]`, `{ }`) very deeply.
//!
//! Why: the YAML scanner behind `serde_yaml_ng` (unsafe-libyaml, a port of libyaml) walks its
//! stack of simple-key candidates, one per flow level, for every token, and `serde_yaml_ng` reads a
//! whole document before its own recursion limit (128) applies. So `[a: [a: [a: …` costs
//! O(tokens × depth): 400 KB took 32 s in a release build (found while hardening, issue 7). A
//! document nested that deep can never be read anyway; this guard refuses it before parsing.
//!
//! The guard computes an upper bound of the flow depth in one pass, without a YAML parser: a
//! small automaton whose paths cover every way the scanner can read quotes and comments (a quote
//! char after a separator may open a quoted scalar or be plain text; `#` after an indicator may
//! start a comment or not), keeping for each state the deepest nesting any path reaches. Brackets
//! inside quoted scalars and comments do not count; elsewhere an opener adds one and a closer
//! takes one away (never below zero). Because the real reading is one of the paths, the bound is
//! never below the real depth. It is above it when quoted or plain text holds unclosed `[`/`{`
//! (the path that reads the quotes as text counts them): a document would need more than
//! [`MAX_FLOW_DEPTH`] of those to be refused.

/// Refuse documents whose flow depth may exceed this. Above `serde_yaml_ng`'s recursion limit
/// (128), so that nothing it would accept is refused; low enough that parsing stays linear.
pub const MAX_FLOW_DEPTH: usize = 256;

const OUT: usize = 0;
/// Right after a quoted scalar closed (a `#` here starts a comment).
const AFTER_QUOTE: usize = 1;
const SINGLE: usize = 2;
/// After a `'` inside a single-quoted scalar: `''` is an escaped quote, anything else closed it.
const SINGLE_QUOTE_SEEN: usize = 3;
const DOUBLE: usize = 4;
const DOUBLE_ESCAPE: usize = 5;
const COMMENT: usize = 6;
const STATES: usize = 7;

/// Where a quoted scalar or a token may begin: after whitespace, a line start or an indicator.
fn separator(previous: Option<u8>) -> bool {
    matches!(
        previous,
        None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':')
    )
}

fn blank(previous: Option<u8>) -> bool {
    matches!(previous, None | Some(b' ' | b'\t' | b'\n' | b'\r'))
}

/// libyaml starts a comment at a `#` wherever a token may begin (also right after `]`, `}`).
fn comment_may_start(previous: Option<u8>) -> bool {
    separator(previous) || matches!(previous, Some(b']' | b'}'))
}

/// `Some(line)` (1-based) when the flow depth of `text` may exceed `limit`.
pub fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    // Fast path: fewer openers than the limit cannot nest deeper than it.
    if bytes.iter().filter(|b| matches!(b, b'[' | b'{')).count() <= limit {
        return None;
    }
    let mut depth: [Option<usize>; STATES] = [None; STATES];
    depth[OUT] = Some(0);
    let mut line = 1;
    let mut previous: Option<u8> = None;
    for &b in bytes {
        let mut next: [Option<usize>; STATES] = [None; STATES];
        let mut reach = |state: usize, d: usize| {
            next[state] = Some(next[state].map_or(d, |n| n.max(d)));
        };
        for (state, d) in depth.iter().enumerate() {
            let Some(d) = *d else { continue };
            match state {
                OUT | AFTER_QUOTE | SINGLE_QUOTE_SEEN => {
                    if state == SINGLE_QUOTE_SEEN && b == b'\'' {
                        reach(SINGLE, d);
                        continue;
                    }
                    let closed_quote = state != OUT;
                    match b {
                        b'[' | b'{' => reach(OUT, d + 1),
                        b']' | b'}' => reach(OUT, d.saturating_sub(1)),
                        b'\'' | b'"' => {
                            reach(OUT, d);
                            if separator(previous) {
                                reach(if b == b'\'' { SINGLE } else { DOUBLE }, d);
                            }
                        }
                        // After whitespace always a comment (or text of a block scalar, which
                        // holds no structure either); after an indicator or a quoted scalar
                        // perhaps one (libyaml), perhaps plain text.
                        b'#' if blank(previous) => reach(COMMENT, d),
                        b'#' => {
                            reach(OUT, d);
                            if closed_quote || comment_may_start(previous) {
                                reach(COMMENT, d);
                            }
                        }
                        _ => reach(OUT, d),
                    }
                }
                SINGLE => reach(
                    if b == b'\'' {
                        SINGLE_QUOTE_SEEN
                    } else {
                        SINGLE
                    },
                    d,
                ),
                DOUBLE => match b {
                    b'\\' => reach(DOUBLE_ESCAPE, d),
                    b'"' => reach(AFTER_QUOTE, d),
                    _ => reach(DOUBLE, d),
                },
                DOUBLE_ESCAPE => reach(DOUBLE, d),
                _ => reach(if b == b'\n' { OUT } else { COMMENT }, d),
            }
        }
        depth = next;
        if depth.iter().flatten().any(|d| *d > limit) {
            return Some(line);
        }
        if b == b'\n' {
            line += 1;
        }
        previous = Some(b);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(text: &str) -> bool {
        too_deep(text, 3).is_some()
    }

    #[test]
    fn real_nesting_is_counted() {
        assert!(!bound("a: [[[x]]]\nb: {c: [d]}\n"));
        assert!(bound("a: [[[[x]]]]\n"));
        assert!(bound("[a: [a: [a: [a: x]]]]"));
        assert!(bound("{\n a: {\n  b: {\n   c: {d: 1}}}}\n"));
        assert_eq!(too_deep("x\n[[\n[[", 3), Some(3));
    }

    #[test]
    fn balanced_nesting_is_not_added_up() {
        let many = "- [[[x]]]\n".repeat(1000);
        assert_eq!(too_deep(&many, 3), None);
        let flow = format!("[{}]", vec!["[[1]]"; 1000].join(", "));
        assert_eq!(too_deep(&flow, 3), None);
    }

    #[test]
    fn brackets_in_quotes_comments_and_plain_text() {
        // Balanced text inside quotes, comments and block scalars does not add up.
        for text in [
            "a: '[[[]]]'\n",
            "a: \"[[[]]]\"\n",
            "a: \"\\\"[[[]]]\"\n",
            "a: 'it''s [[[]]]'\n",
            "a: x # [[[[[[\n",
            "# [[[[[[\n",
            "[a, 'b[[]]', \"c{{}}\"]\n",
            "[\n'x' # [[[[[[\n]\n",
            "a: |\n  [[[]]]\n  # {{{{{{\n",
        ] {
            let many = text.repeat(100);
            assert!(!bound(&many), "{text:?}");
        }
        // Unclosed openers in text count (the price of not parsing).
        assert!(bound("a: '[[[['\n"));
        // Never below the real depth, whatever the quotes suggest.
        for text in [
            // A quote inside a plain scalar is text: the brackets after it are real.
            "[a'b, [c'd, [e'f, [g'h]]]]",
            // Closers inside real quoted scalars do not close anything.
            "[']', [']', [']', [']']]]]",
            "[a'b, [']]', [a'b, [']]', [a'b, [']]', [x]]]]]]]",
            "[\"]\", [\"]\", [\"]\", [\"]\"]]]]",
            // Nor do closers in comments.
            "[ # ]]]\n [ # ]]]\n [ # ]]]\n [ x ]]]]\n",
        ] {
            assert!(bound(text), "{text:?}");
        }
    }

    #[test]
    fn few_openers_take_the_fast_path() {
        assert_eq!(too_deep("{{{", 3), None);
        assert_eq!(too_deep("", 0), None);
    }
}
