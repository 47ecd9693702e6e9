//! Finding clips as fzf does: each word of the query matches anywhere in a clip, its letters
//! in order with gaps allowed (`dply` finds `deploy`, `ample` finds `prod.example.org`); the
//! best matches first (word starts, consecutive letters), the most recently used first among
//! equals. fzf's own syntax works too: `'exact`, `^start`, `end$`, `!not`.

use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config, Matcher, Utf32Str};

use ferry_protocol::DeviceId;

use crate::clip::ClipContent;
use crate::query::{ClipView, Strategy};
use crate::state::State;

/// How much of a clip's text is searched: its start, where what people look for is.
const SEARCHED_BYTES: usize = 1024;

/// How many matches, newest first, are ranked: a query that matches most of a long history
/// (one letter, a common word) is ranked among its newest matches, so that a keystroke stays
/// within a frame (see `BENCHMARKS.md`); a rarer one is looked for in the whole history.
const RANKED: usize = 2_000;

impl State {
    /// The clips of the history (not the trash) that `query` finds, best first, at most
    /// `limit`, ranked among the newest [`RANKED`] matches. An empty query finds nothing: the
    /// picker lists the history then.
    pub fn find(&self, query: &str, limit: usize) -> Vec<ClipView<'_>> {
        let pattern = Pattern::parse(query, CaseMatching::Smart, Normalization::Smart);
        if pattern.atoms.is_empty() || limit == 0 {
            return Vec::new();
        }
        let needles = needles(&pattern);
        let history = self.history(None, usize::MAX);
        let wanted = RANKED.max(limit);
        // Newest first, two blocks at a time (one per thread), until enough matches are found; the rank
        // in the history breaks ties (the lower, the more recent).
        let mut found: Vec<Found<'_>> = Vec::new();
        for (pair, blocks) in history.chunks(2 * BLOCK).enumerate() {
            let (newer, older) = blocks.split_at(BLOCK.min(blocks.len()));
            let first = pair * 2 * BLOCK;
            let (newer, older) = match older.is_empty() || cfg!(target_family = "wasm") {
                true => (
                    matches(&pattern, &needles, newer, first),
                    matches(&pattern, &needles, older, first + BLOCK),
                ),
                false => std::thread::scope(|threads| {
                    let older = threads.spawn(|| matches(&pattern, &needles, older, first + BLOCK));
                    let newer = matches(&pattern, &needles, newer, first);
                    let older = older
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (newer, older)
                }),
            };
            found.extend(newer);
            found.extend(older);
            if found.len() >= wanted {
                found.truncate(wanted);
                break;
            }
        }
        let best = |a: &Found<'_>, b: &Found<'_>| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        if found.len() > limit {
            found.select_nth_unstable_by(limit - 1, best);
            found.truncate(limit);
        }
        found.sort_unstable_by(best);
        found.into_iter().map(|(_, _, view)| view).collect()
    }
}

impl State {
    /// The aliases that `query` finds in their name or value, best first, as `(name, value)`;
    /// every alias, by name, when the query is empty.
    pub fn find_aliases(
        &self,
        query: &str,
        strategy: Strategy,
        local: DeviceId,
    ) -> Vec<(&str, String)> {
        let aliases = self
            .aliases(strategy, local)
            .into_iter()
            .filter_map(|(name, resolved)| Some((name, resolved.value()?.to_owned())));
        let pattern = Pattern::parse(query, CaseMatching::Smart, Normalization::Smart);
        if pattern.atoms.is_empty() {
            return aliases.collect();
        }
        let mut matcher = Matcher::new(Config::DEFAULT);
        let mut buffer = Vec::new();
        let mut found: Vec<(u32, (&str, String))> = aliases
            .filter_map(|(name, value)| {
                let text = format!("{name} {value}");
                let haystack = Utf32Str::new(&text, &mut buffer);
                Some((pattern.score(haystack, &mut matcher)?, (name, value)))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.0.cmp(b.1.0)));
        found.into_iter().map(|(_, alias)| alias).collect()
    }
}

/// A clip found: its score, its rank in the history (newest first) and the clip.
type Found<'a> = (u32, usize, ClipView<'a>);

/// How many clips one core looks at in a go.
const BLOCK: usize = 4096;

/// The clips of `views` (ranked from `first` on) that `pattern` matches, with their scores.
fn matches<'a>(
    pattern: &Pattern,
    needles: &[Vec<u8>],
    views: &[ClipView<'a>],
    first: usize,
) -> Vec<Found<'a>> {
    let mut matcher = Matcher::new(Config::DEFAULT);
    let mut buffer = Vec::new();
    views
        .iter()
        .enumerate()
        .filter_map(|(n, view)| {
            let haystack = Utf32Str::new(searched(view.content), &mut buffer);
            if let Utf32Str::Ascii(bytes) = haystack
                && !needles.iter().all(|needle| in_order(bytes, needle))
            {
                return None;
            }
            let score = pattern.score(haystack, &mut matcher)?;
            Some((score, first + n, *view))
        })
        .collect()
}

/// The letters each word of the query needs, in order and lowercased: every kind of match
/// (fuzzy, exact, prefix, suffix) needs them. Words that must not match, and those beyond
/// ASCII (which the matcher compares after normalising), are left to the matcher.
fn needles(pattern: &Pattern) -> Vec<Vec<u8>> {
    pattern
        .atoms
        .iter()
        .filter(|atom| !atom.negative)
        .filter_map(|atom| match atom.needle_text() {
            Utf32Str::Ascii(bytes) => Some(bytes.to_ascii_lowercase()),
            Utf32Str::Unicode(chars) => chars
                .iter()
                .map(|c| c.is_ascii().then(|| (*c as u8).to_ascii_lowercase()))
                .collect(),
        })
        .collect()
}

/// Whether an ASCII `haystack` holds the letters of `needle` in order, in either case: what a
/// match needs, checked far faster than the matcher scores one.
fn in_order(haystack: &[u8], needle: &[u8]) -> bool {
    let mut rest = haystack;
    for &letter in needle {
        let found = match letter.is_ascii_lowercase() {
            true => memchr::memchr2(letter, letter.to_ascii_uppercase(), rest),
            false => memchr::memchr(letter, rest),
        };
        match found {
            Some(at) => rest = &rest[at + 1..],
            None => return false,
        }
    }
    true
}

/// What of a clip is searched: the start of its text, a file's name, an image's type.
fn searched(content: &ClipContent) -> &str {
    match content {
        ClipContent::File(file) => &file.name,
        ClipContent::Image(image) => &image.mime,
        _ => {
            let text = content.text().unwrap_or_default();
            let mut end = text.len().min(SEARCHED_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            &text[..end]
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::clip::ClipContent;
    use crate::replica::Replica;
    use ferry_protocol::{DeviceId, SyncKey};

    fn replica(texts: &[&str]) -> Replica {
        let names = SyncKey::from_bytes([7; 32]).keys().names;
        let mut replica = Replica::new(DeviceId([1; 16]));
        for (n, text) in texts.iter().enumerate() {
            replica.copy(
                &names,
                ClipContent::Text((*text).to_owned()),
                1_000 + n as u64,
            );
        }
        replica
    }

    fn found(replica: &Replica, query: &str) -> Vec<String> {
        replica
            .state()
            .find(query, 10)
            .iter()
            .map(|view| view.content.text().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn words_match_anywhere_and_letters_with_gaps() {
        let replica = replica(&["ssh deploy@prod.example.org", "git push", "make deploy"]);
        assert_eq!(found(&replica, "ample"), ["ssh deploy@prod.example.org"]);
        assert_eq!(
            found(&replica, "dply"),
            ["make deploy", "ssh deploy@prod.example.org"]
        );
        assert_eq!(
            found(&replica, "dply prod"),
            ["ssh deploy@prod.example.org"]
        );
        assert!(found(&replica, "zzz").is_empty());
        assert!(found(&replica, "").is_empty());
    }

    #[test]
    fn better_matches_come_first_and_the_newest_among_equals() {
        let replica = replica(&["report", "a report", "rxexpxoxrxt", "report"]);
        let order = found(&replica, "report");
        assert_eq!(order.last().unwrap(), "rxexpxoxrxt", "{order:?}");
        // The same text copied again is one clip, used last.
        assert_eq!(order[0], "report", "{order:?}");
    }

    #[test]
    fn aliases_are_found_by_name_or_value() {
        let mut replica = replica(&[]);
        for (name, value) in [("sig", "Best regards, A"), ("addr", "1 Main St")] {
            replica.set_alias(name.to_owned(), Some(value.to_owned()), 5_000);
        }
        let state = replica.state();
        let local = DeviceId([1; 16]);
        let names = |query| -> Vec<&str> {
            state
                .find_aliases(query, crate::Strategy::Latest, local)
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert_eq!(names(""), ["addr", "sig"]);
        assert_eq!(names("regards"), ["sig"]);
        assert_eq!(names("main"), ["addr"]);
        assert!(names("zzz").is_empty());
    }

    #[test]
    fn the_quick_check_agrees_with_the_matcher() {
        let replica = replica(&["Deploy to PROD", "déploiement", "nothing here"]);
        // Case and accents are the matcher's business: the quick check never hides a match.
        assert_eq!(found(&replica, "prod"), ["Deploy to PROD"]);
        assert_eq!(found(&replica, "PROD"), ["Deploy to PROD"]);
        assert_eq!(found(&replica, "deploi"), ["déploiement"]);
        assert_eq!(found(&replica, "!nothing prod"), ["Deploy to PROD"]);
        assert!(super::in_order(b"ssh deploy", b"dply"));
        assert!(!super::in_order(b"ssh deploy", b"ylpd"));
    }

    #[test]
    fn only_the_start_of_a_long_text_is_searched() {
        let long = format!("{}needle", "x".repeat(super::SEARCHED_BYTES));
        let replica = replica(&[&long, "needle at the start"]);
        assert_eq!(found(&replica, "needle"), ["needle at the start"]);
        // A cut inside a character is moved back to its start.
        let wide = "é".repeat(super::SEARCHED_BYTES);
        assert_eq!(super::searched(&ClipContent::Text(wide)).len(), 1024);
    }
}
