//! The table format in a terminal: the answer fitted to the window, as DuckDB's CLI does.
//! Columns keep their natural width while the row fits; past it, the widest are narrowed to one
//! common width (a long cell is cut with `…`), and when even narrow columns do not fit, the
//! middle ones are left out and a `…` column stands for them. A footer gives the row count,
//! the columns shown, and the time. Piped, redirected or with `--wide`, the full table is
//! written instead ([`crate::write_batches`]).

use std::io::Write;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use console::{measure_text_width, truncate_str};

use crate::QueryError;

/// The narrowest a column is made before columns are left out (or its natural width, if less).
const NARROWEST: usize = 12;

/// Writes `batches` as a table at most `width` characters wide, with a footer.
pub fn write_fitted(
    batches: &[RecordBatch],
    schema: SchemaRef,
    width: usize,
    elapsed: Option<Duration>,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let numeric: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric())
        .collect();
    let mut rows = crate::text_rows(batches, "NULL")?;
    for cell in rows.iter_mut().flatten() {
        *cell = one_line(cell);
    }
    let natural: Vec<usize> = (0..names.len())
        .map(|c| {
            rows.iter()
                .map(|r| measure_text_width(&r[c]))
                .chain([measure_text_width(&names[c])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let (shown, widths) = layout(&natural, width);

    let elided = shown.len() < names.len();
    let line = |cells: &[String], pad: &dyn Fn(usize) -> bool| -> String {
        let mut text = String::from("│");
        for (i, (&column, &w)) in shown.iter().zip(&widths).enumerate() {
            if elided && i == shown.len() / 2 + shown.len() % 2 {
                text.push_str(" … │");
            }
            let cell = truncate_str(&cells[column], w, "…");
            let fill = " ".repeat(w.saturating_sub(measure_text_width(&cell)));
            if pad(column) {
                text.push_str(&format!(" {fill}{cell} │"));
            } else {
                text.push_str(&format!(" {cell}{fill} │"));
            }
        }
        text
    };
    let rule = |left: &str, middle: &str, right: &str| -> String {
        let mut parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        if elided {
            parts.insert(shown.len() / 2 + shown.len() % 2, "───".to_string());
        }
        format!("{left}{}{right}", parts.join(middle))
    };
    writeln!(out, "{}", rule("┌", "┬", "┐"))?;
    writeln!(out, "{}", line(&names, &|_| false))?;
    writeln!(out, "{}", rule("├", "┼", "┤"))?;
    for row in &rows {
        writeln!(out, "{}", line(row, &|c| numeric[c]))?;
    }
    writeln!(out, "{}", rule("└", "┴", "┘"))?;
    let mut footer = format!(
        "{} row{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if elided {
        footer.push_str(&format!(
            " · {} columns ({} shown, {} left out: --wide shows all)",
            names.len(),
            shown.len(),
            names.len() - shown.len()
        ));
    }
    if let Some(elapsed) = elapsed {
        footer.push_str(&format!(" · {:.3} s", elapsed.as_secs_f64()));
    }
    writeln!(out, "{footer}")?;
    Ok(())
}

/// Which columns are shown and at what width, for a table of `natural` widths in `width`
/// characters: all at their natural width if they fit; else the widest narrowed to one common
/// width; else the middle columns left out (first and last kept) until narrow ones fit.
fn layout(natural: &[usize], width: usize) -> (Vec<usize>, Vec<usize>) {
    // `│ a │ b │`: three characters a column and one more; a left-out run costs four.
    let total = |widths: &[usize], elided: bool| -> usize {
        widths.iter().map(|w| w + 3).sum::<usize>() + 1 + if elided { 4 } else { 0 }
    };
    let mut shown: Vec<usize> = (0..natural.len()).collect();
    let narrow = |shown: &[usize]| -> Vec<usize> {
        shown.iter().map(|&c| natural[c].min(NARROWEST)).collect()
    };
    while shown.len() > 2 && total(&narrow(&shown), shown.len() < natural.len()) > width {
        shown.remove(shown.len() / 2);
    }
    let elided = shown.len() < natural.len();
    let wanted: Vec<usize> = shown.iter().map(|&c| natural[c]).collect();
    if total(&wanted, elided) <= width {
        return (shown, wanted);
    }
    // The largest common cap that fits, then what is left to the capped columns in turn.
    let floor = wanted.iter().map(|&w| w.min(NARROWEST)).collect::<Vec<_>>();
    let mut cap = wanted.iter().copied().max().unwrap_or(0);
    let capped = |cap: usize| -> Vec<usize> { wanted.iter().map(|&w| w.min(cap)).collect() };
    while cap > NARROWEST && total(&capped(cap), elided) > width {
        cap -= 1;
    }
    let mut widths = if total(&capped(cap), elided) <= width {
        capped(cap)
    } else {
        floor
    };
    // What is left goes a character at a time to the columns still cut.
    let mut spare = width.saturating_sub(total(&widths, elided));
    while spare > 0 {
        let mut given = false;
        for (w, &want) in widths.iter_mut().zip(&wanted) {
            if spare > 0 && *w < want {
                *w += 1;
                spare -= 1;
                given = true;
            }
        }
        if !given {
            break;
        }
    }
    (shown, widths)
}

/// A cell on one line: line breaks and tabs shown as `↵` and spaces.
fn one_line(text: &str) -> String {
    text.replace("\r\n", "↵")
        .replace(['\n', '\r'], "↵")
        .replace('\t', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn table(columns: usize, rows: usize, cell: &str) -> (Vec<RecordBatch>, SchemaRef) {
        let mut fields = vec![Field::new("n", DataType::Int64, false)];
        fields
            .extend((1..columns).map(|c| Field::new(format!("column_{c}"), DataType::Utf8, true)));
        let schema = Arc::new(Schema::new(fields));
        let mut arrays: Vec<arrow::array::ArrayRef> =
            vec![Arc::new(Int64Array::from_iter_values(0..rows as i64))];
        for c in 1..columns {
            arrays.push(Arc::new(StringArray::from_iter_values(
                (0..rows).map(|r| format!("{cell}{c}.{r}")),
            )));
        }
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap_or_else(|e| panic!("{e}"));
        (vec![batch], schema)
    }

    fn render(batches: &[RecordBatch], schema: SchemaRef, width: usize) -> String {
        let mut out = Vec::new();
        write_fitted(
            batches,
            schema,
            width,
            Some(Duration::from_millis(12)),
            &mut out,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_narrow_answer_is_shown_whole() {
        let (batches, schema) = table(3, 2, "x");
        let text = render(&batches, schema, 80);
        assert!(text.contains("│ n │ column_1 │ column_2 │"), "{text}");
        assert!(text.contains("│ 1 │ x1.1     │ x2.1     │"), "{text}");
        assert!(text.ends_with("2 rows · 0.012 s\n"), "{text}");
    }

    #[test]
    fn long_cells_are_cut_to_fit_the_window() {
        let (batches, schema) = table(3, 3, &"long ".repeat(30));
        let text = render(&batches, schema, 60);
        for line in text.lines() {
            assert!(
                measure_text_width(line) <= 60,
                "{} wide: {line}",
                line.len()
            );
        }
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("│ 2 │ long long"), "{text}");
        assert!(text.ends_with("3 rows · 0.012 s\n"), "{text}");
    }

    #[test]
    fn middle_columns_are_left_out_with_a_note() {
        let (batches, schema) = table(16, 4, "value-of-some-length-");
        let text = render(&batches, schema, 80);
        for line in text.lines() {
            assert!(measure_text_width(line) <= 80, "{line}");
        }
        let header = text.lines().nth(1).unwrap_or_default();
        assert!(header.starts_with("│ n │ column_1"), "{header}");
        assert!(
            header.trim_end_matches(['│', ' ']).ends_with("column_15"),
            "{header}"
        );
        assert!(header.contains(" … │"), "{header}");
        assert!(!header.contains("column_8 "), "{header}");
        let footer = text.lines().last().unwrap_or_default();
        assert!(
            footer.starts_with("4 rows · 16 columns (")
                && footer.contains(" left out: --wide shows all)"),
            "{footer}"
        );
    }

    #[test]
    fn line_breaks_in_a_cell_keep_the_row_on_one_line() {
        let (batches, schema) = table(2, 1, "a\nb\tc");
        let text = render(&batches, schema, 80);
        assert!(text.contains("│ 0 │ a↵b c1.0 │"), "{text}");
    }
}
