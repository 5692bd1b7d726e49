//! Medians with min and max, the printed tables, and the CSV.

use std::fmt::Write as _;

/// The median, min and max of repeated measurements.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stat {
    pub(crate) fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: s[0],
            max: s[n - 1],
        })
    }

    /// `median [min–max]` with `digits` decimals.
    pub(crate) fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}–{:.d$}]",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// One table of the report: printed as aligned columns, kept for the CSV.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) section: String,
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) notes: Vec<String>,
}

impl Table {
    /// Notes that the table's rows were skipped because `program` (a Debian package of that
    /// name) is not installed.
    pub(crate) fn skipped_without(&mut self, program: &str) {
        self.notes.push(format!(
            "{program} is not installed (`apt-get install -y {program}`): skipped."
        ));
    }

    pub(crate) fn new(section: impl Into<String>, header: &[&str]) -> Table {
        Table {
            section: section.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// A Markdown table (readable as plain text too, and pasted as is into BENCHMARKS.md).
    pub(crate) fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |row: &[String]| {
            let mut out = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count();
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
            out
        };
        let mut out = format!("### {}\n\n", self.section);
        out.push_str(&line(&self.header));
        out.push('\n');
        out.push('|');
        for w in &width {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}\n");
        }
        out
    }
}

/// The numbers behind the tables, one measurement per line, for tools.
#[derive(Debug, Default)]
pub(crate) struct Csv {
    lines: Vec<String>,
}

impl Csv {
    pub(crate) const HEADER: &'static str = "section,case,impl,metric,unit,median,min,max";

    pub(crate) fn add(
        &mut self,
        section: &str,
        case: &str,
        imp: &str,
        metric: &str,
        unit: &str,
        stat: Stat,
    ) {
        self.lines.push(format!(
            "{section},{case},{imp},{metric},{unit},{},{},{}",
            stat.median, stat.min, stat.max
        ));
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::from(Self::HEADER);
        out.push('\n');
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// A target of the project, checked against this run's figures.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) goal: String,
    pub(crate) measured: String,
    /// `None`: not measured on this branch yet.
    pub(crate) met: Option<bool>,
    /// A row of the floor (`floor.rs`), not of this crate: whether the least work any layer
    /// can do would meet the goal.
    pub(crate) bound: bool,
}

/// Where the runs put what they measured.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) csv: Csv,
    pub(crate) targets: Vec<Target>,
}

impl Sink {
    pub(crate) fn target(&mut self, what: &str, goal: &str, measured: String, met: Option<bool>) {
        self.targets.push(Target {
            what: what.into(),
            goal: goal.into(),
            measured,
            met,
            bound: false,
        });
    }

    /// The same target measured on the floor (`floor.rs`): whether any layer could meet it.
    pub(crate) fn bound(&mut self, what: &str, goal: &str, measured: String, reaches: bool) {
        self.targets.push(Target {
            what: format!("floor, for reference: {what}"),
            goal: goal.into(),
            measured,
            met: Some(reaches),
            bound: true,
        });
    }

    pub(crate) fn targets_table(&self) -> Table {
        let mut t = Table::new(
            "Targets",
            &["target", "goal", "measured (median [min–max])", "met"],
        );
        for x in &self.targets {
            t.row(vec![
                x.what.clone(),
                x.goal.clone(),
                x.measured.clone(),
                match x.met {
                    Some(reaches) if x.bound => if reaches {
                        "the floor would"
                    } else {
                        "not even the floor"
                    }
                    .into(),
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "not measured".into(),
                },
            ]);
        }
        t.notes.push(
            "Met means the median meets the goal; min and max show how far the noise reaches. \
             A floor row measures the same target on the least work a layer with this crate's \
             request flow can do (`benches/src/floor.rs`, not a session implementation): where \
             not even the floor meets a goal, no layer with this request flow can. For the \
             client-side write unread (B4), the floor is `PrivateCookieJar`'s own read and \
             write (its B3): a session kept in one cookie must open the cookie to keep its \
             other keys and deadlines, then reseal it, both through the `cookie` crate, while \
             the jar's B4 only seals one new value."
                .into(),
        );
        t
    }
}
