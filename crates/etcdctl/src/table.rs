//! The ASCII tables of `-w table`, laid out as etcdctl 3.5's table writer
//! (olekukonko/tablewriter v0.0.5, right-aligned cells) lays them out: `+---+` borders,
//! headers upper-cased and centred, cells wider than 30 columns wrapped at spaces with
//! minimal raggedness, multi-line rows padded with blanks.

use unicode_width::UnicodeWidthStr;

/// Cells longer than this wrap at spaces (tablewriter's `MAX_ROW_WIDTH`).
const MAX_CELL_WIDTH: usize = 30;

/// Penalty for a line that is longer than the limit (a single over-long word).
const OVERFLOW_PENALTY: u64 = 100_000;

/// Renders `header` and `rows` as etcdctl's table writer does.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths = vec![0usize; columns];
    let header_cells: Vec<Vec<String>> = header
        .iter()
        .enumerate()
        .map(|(i, h)| wrap_cell(h, &mut widths[i]))
        .collect();
    let row_cells: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| {
            (0..columns)
                .map(|i| {
                    let text = row.get(i).map(String::as_str).unwrap_or("");
                    wrap_cell(text, &mut widths[i])
                })
                .collect()
        })
        .collect();

    let mut out = String::new();
    let border = border_line(&widths);
    out.push_str(&border);

    let header_height = header_cells.iter().map(Vec::len).max().unwrap_or(0);
    for line in 0..header_height {
        out.push('|');
        for (i, cell) in header_cells.iter().enumerate() {
            let text = cell.get(line).map(|s| title(s)).unwrap_or_default();
            out.push(' ');
            out.push_str(&pad_center(&text, widths[i]));
            out.push_str(" |");
        }
        out.push('\n');
    }
    out.push_str(&border);

    for row in &row_cells {
        let height = row.iter().map(Vec::len).max().unwrap_or(0);
        for line in 0..height {
            for (i, cell) in row.iter().enumerate() {
                // tablewriter fills the missing lines of a shorter cell with two spaces.
                let text = cell.get(line).map(String::as_str).unwrap_or("  ");
                out.push_str("| ");
                out.push_str(&pad_left(text, widths[i]));
                out.push(' ');
            }
            out.push_str("|\n");
        }
    }
    out.push_str(&border);
    out
}

fn border_line(widths: &[usize]) -> String {
    let mut line = String::from("+");
    for w in widths {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
    }
    line.push('\n');
    line
}

/// Splits a cell into lines (reflowed into one paragraph and wrapped at
/// `min(widest line, 30)` columns), and widens `width` to fit them.
fn wrap_cell(text: &str, width: &mut usize) -> Vec<String> {
    let raw: Vec<&str> = text.split('\n').collect();
    let widest = raw.iter().map(|l| l.width()).max().unwrap_or(0);
    let limit = widest.min(MAX_CELL_WIDTH);
    let paragraph = raw.join(" ");
    let lines = wrap_words(&paragraph, limit);
    let needed = lines
        .iter()
        .map(|l| l.width())
        .max()
        .unwrap_or(0)
        .max(limit);
    *width = (*width).max(needed);
    lines
}

/// tablewriter's `WrapString`: words split at single spaces, broken into lines of at most
/// `limit` columns (or the longest word) so that the sum of squared slack is least.
fn wrap_words(paragraph: &str, limit: usize) -> Vec<String> {
    let words: Vec<&str> = paragraph.split(' ').collect();
    let limit = words
        .iter()
        .map(|w| w.width())
        .max()
        .unwrap_or(0)
        .max(limit);
    let n = words.len();
    // length(i, j): width of words i..=j joined by single spaces.
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0usize);
    for w in &words {
        let last = prefix.last().copied().unwrap_or(0);
        prefix.push(last + w.width());
    }
    let length = |i: usize, j: usize| prefix[j + 1] - prefix[i] + (j - i);
    let mut cost = vec![u64::MAX; n + 1];
    let mut next_break = vec![n; n + 1];
    cost[n] = 0;
    for i in (0..n).rev() {
        if length(i, n - 1) <= limit {
            cost[i] = 0;
            next_break[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = length(i, j - 1);
            let slack = limit.abs_diff(len) as u64;
            let mut c = slack.saturating_mul(slack).saturating_add(cost[j]);
            if len > limit {
                c = c.saturating_add(OVERFLOW_PENALTY);
            }
            if c < cost[i] {
                cost[i] = c;
                next_break[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        let j = next_break[i].max(i + 1);
        lines.push(words[i..j].join(" "));
        i = j;
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// tablewriter's header formatting: `_` (and `.` between non-digits) become spaces,
/// trimmed, upper-cased.
fn title(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_num_or_space = |c: char| c.is_ascii_digit() || c == ' ';
    let replaced: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| match c {
            '_' => ' ',
            '.' if (i != 0 && !is_num_or_space(chars[i - 1]))
                || (i + 1 != chars.len() && !is_num_or_space(chars[i + 1])) =>
            {
                ' '
            }
            c => c,
        })
        .collect();
    let trimmed = replaced.trim();
    if trimmed.is_empty() && !text.is_empty() {
        return " ".to_string();
    }
    trimmed.to_uppercase()
}

fn pad_center(text: &str, width: usize) -> String {
    let gap = width.saturating_sub(text.width());
    let left = gap / 2;
    format!("{}{text}{}", " ".repeat(left), " ".repeat(gap - left))
}

fn pad_left(text: &str, width: usize) -> String {
    let gap = width.saturating_sub(text.width());
    format!("{}{text}", " ".repeat(gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_table_matches_etcdctl() {
        let header = [
            "ID",
            "Status",
            "Name",
            "Peer Addrs",
            "Client Addrs",
            "Is Learner",
        ];
        let rows = vec![vec![
            "2e1259d415f2a040".to_string(),
            "started".to_string(),
            "default".to_string(),
            "http://127.0.0.1:23800".to_string(),
            "http://127.0.0.1:23790".to_string(),
            "false".to_string(),
        ]];
        let expected = "\
+------------------+---------+---------+------------------------+------------------------+------------+
|        ID        | STATUS  |  NAME   |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+---------+---------+------------------------+------------------------+------------+
| 2e1259d415f2a040 | started | default | http://127.0.0.1:23800 | http://127.0.0.1:23790 |      false |
+------------------+---------+---------+------------------------+------------------------+------------+
";
        assert_eq!(render(&header, &rows), expected);
    }

    #[test]
    fn long_cells_wrap_as_etcdctl() {
        let rows = vec![vec![
            "127.0.0.1:23791".to_string(),
            "memberID:13668033151171901709 alarm:NOSPACE ".to_string(),
        ]];
        let expected = "\
+-----------------+--------------------------------+
|    ENDPOINT     |             ERRORS             |
+-----------------+--------------------------------+
| 127.0.0.1:23791 |  memberID:13668033151171901709 |
|                 |                 alarm:NOSPACE  |
+-----------------+--------------------------------+
";
        assert_eq!(render(&["endpoint", "errors"], &rows), expected);
    }

    #[test]
    fn empty_tables_have_only_a_header() {
        let expected =
            "+----------+------+\n| ENDPOINT | HASH |\n+----------+------+\n+----------+------+\n";
        assert_eq!(render(&["endpoint", "hash"], &[]), expected);
    }

    #[test]
    fn wrapping_minimizes_raggedness() {
        let text = "aaaa bb cc dddddd eeeeeeeeee ffffffffff gggg";
        let lines = wrap_words(text, 12);
        assert!(lines.iter().all(|l| l.width() <= 12), "{lines:?}");
        assert_eq!(lines.join(" "), text);
    }
}
