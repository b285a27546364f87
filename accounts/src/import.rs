//! Parsing the county's school list (CSV) into townships and schools, with
//! every problem reported by file line.

use std::collections::BTreeMap;

use sync_core::records::SchoolType;
use sync_core::SchoolId;

use crate::model::{RowError, School, TownshipId};

/// What a file holds once every row is checked.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Township code → name, from the rows.
    pub townships: BTreeMap<TownshipId, String>,
    pub schools: Vec<School>,
    pub errors: Vec<RowError>,
}

/// Turns file bytes into text: UTF-8 with or without BOM, else GB18030 (a
/// superset of GBK and GB2312, which Excel on Chinese Windows writes for
/// "CSV (逗号分隔)").
pub(crate) fn decode_text(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec()).map_err(|e| {
            format!("the file starts with a UTF-8 byte order mark but is not UTF-8 (bad bytes at offset {}); save it again as \"CSV UTF-8\"", e.utf8_error().valid_up_to() + 3)
        });
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err("the file is UTF-16 (Excel's \"Unicode text\"); save it as \"CSV UTF-8 (逗号分隔)\" or \"CSV (逗号分隔)\" instead".into());
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_owned());
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| s.into_owned())
        .ok_or_else(|| {
            "the file is neither UTF-8 nor GBK/GB18030 text; save it from Excel as \"CSV UTF-8 (逗号分隔)\"".into()
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Code,
    Name,
    Type,
    TownCode,
    TownName,
    Grade(usize),
}

const REQUIRED: [(Col, &str); 5] = [
    (Col::Code, "school_code (学校标识码)"),
    (Col::Name, "name (学校名称)"),
    (Col::Type, "type (学校类型)"),
    (Col::TownCode, "township_code (乡镇代码)"),
    (Col::TownName, "township_name (乡镇名称)"),
];

const GRADES_ZH: [&str; 9] = [
    "一年级",
    "二年级",
    "三年级",
    "四年级",
    "五年级",
    "六年级",
    "七年级",
    "八年级",
    "九年级",
];

fn column_of(header: &str) -> Option<Col> {
    let h = header.trim().trim_start_matches('\u{feff}').trim();
    let lower = h.to_ascii_lowercase();
    Some(match lower.as_str() {
        "school_code" | "学校标识码" => Col::Code,
        "name" | "学校名称" => Col::Name,
        "type" | "学校类型" => Col::Type,
        "township_code" | "乡镇代码" => Col::TownCode,
        "township_name" | "乡镇名称" => Col::TownName,
        other => {
            if let Some(i) = GRADES_ZH.iter().position(|g| *g == other) {
                return Some(Col::Grade(i));
            }
            let n = other
                .strip_prefix("grade_")
                .or_else(|| other.strip_prefix("grade"))?;
            match n {
                "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" => {
                    Col::Grade(n.parse::<usize>().ok()? - 1)
                }
                _ => return None,
            }
        }
    })
}

const ACCEPTED_COLUMNS: &str = "school_code|学校标识码, name|学校名称, type|学校类型, township_code|乡镇代码, township_name|乡镇名称, grade1..grade9|一年级..九年级";

/// A school type as its code or its Chinese name.
pub(crate) fn parse_school_type(s: &str) -> Option<SchoolType> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "teaching_point" | "教学点" => SchoolType::TeachingPoint,
        "primary" | "完全小学" => SchoolType::Primary,
        "junior" | "初中" => SchoolType::Junior,
        "nine_year" | "九年一贯制" => SchoolType::NineYear,
        "central" | "乡镇中心学校" => SchoolType::Central,
        _ => return None,
    })
}

fn parse_count(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Some(rest) = s.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("enrollment {s:?} is negative; use 0 or more"));
        }
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "enrollment {s:?} is not a whole number; use digits only (empty means 0)"
        ));
    }
    s.parse::<u32>()
        .map_err(|_| format!("enrollment {s:?} is too large"))
}

/// Checks every row of the file. Never fails: problems are `errors`.
pub(crate) fn parse_schools(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    // Header.
    let header = loop {
        match records.next() {
            None => {
                out.errors.push(RowError {
                    line: 1,
                    column: None,
                    message: format!(
                        "the file is empty; the first line must name the columns: {ACCEPTED_COLUMNS}"
                    ),
                });
                return out;
            }
            Some(Err(e)) => {
                out.errors.push(csv_error(&e, 1));
                return out;
            }
            Some(Ok(r)) if r.iter().all(|c| c.trim().is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let header_line = header.position().map(|p| p.line()).unwrap_or(1);
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    let mut cols: Vec<Option<Col>> = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    let mut duplicate = Vec::new();
    for name in &names {
        let col = if name.is_empty() {
            None
        } else {
            match column_of(name) {
                Some(c) if cols.contains(&Some(c)) => {
                    duplicate.push(name.clone());
                    None
                }
                Some(c) => Some(c),
                None => {
                    unknown.push(name.clone());
                    None
                }
            }
        };
        cols.push(col);
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(c, _)| !cols.contains(&Some(*c)))
        .map(|(_, n)| *n)
        .collect();
    if !(missing.is_empty() && unknown.is_empty() && duplicate.is_empty()) {
        let mut parts = Vec::new();
        let mut column = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing required column(s) {}", missing.join(", ")));
            column.extend(missing.iter().map(|s| s.to_string()));
        }
        if !unknown.is_empty() {
            parts.push(format!(
                "unknown column(s) {} (rename or remove them)",
                unknown.join(", ")
            ));
            column.extend(unknown.iter().cloned());
        }
        if !duplicate.is_empty() {
            parts.push(format!("column(s) given twice: {}", duplicate.join(", ")));
            column.extend(duplicate.iter().cloned());
        }
        out.errors.push(RowError {
            line: header_line,
            column: Some(column.join(", ")),
            message: format!(
                "bad header: {}; the accepted columns are {ACCEPTED_COLUMNS}",
                parts.join("; ")
            ),
        });
        return out;
    }
    let index_of = |c: Col| cols.iter().position(|x| *x == Some(c));
    let name_of = |c: Col| index_of(c).map(|i| names[i].clone());

    // Rows.
    let mut seen_schools: BTreeMap<SchoolId, u64> = BTreeMap::new();
    let mut township_first: BTreeMap<TownshipId, (String, u64)> = BTreeMap::new();
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                out.errors.push(csv_error(&e, 0));
                continue;
            }
        };
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let mut err = |col: Option<Col>, message: String| {
            out.errors.push(RowError {
                line,
                column: col.and_then(name_of),
                message,
            });
        };
        if rec.len() != names.len() {
            let extra_empty = rec.len() > names.len()
                && rec.iter().skip(names.len()).all(|c| c.trim().is_empty());
            if !extra_empty {
                err(
                    None,
                    format!(
                        "this row has {} fields but the header has {}; check for a missing or extra comma (a name with a comma must be in double quotes)",
                        rec.len(),
                        names.len()
                    ),
                );
                continue;
            }
        }
        let cell = |c: Col| -> &str {
            index_of(c)
                .and_then(|i| rec.get(i))
                .map(str::trim)
                .unwrap_or("")
        };

        let code = match cell(Col::Code) {
            "" => {
                err(
                    Some(Col::Code),
                    "the school code (学校标识码) is empty".into(),
                );
                None
            }
            s => match SchoolId::new(s) {
                Ok(id) => Some(id),
                Err(e) => {
                    err(Some(Col::Code), e.to_string());
                    None
                }
            },
        };
        if let Some(code) = &code {
            if let Some(first) = seen_schools.get(code) {
                err(
                    Some(Col::Code),
                    format!("school {code} is listed twice (first on line {first}); keep one row per school"),
                );
            }
        }
        let name = cell(Col::Name).to_owned();
        if name.is_empty() {
            err(
                Some(Col::Name),
                "the school name (学校名称) is empty".into(),
            );
        } else if name.chars().count() > 200 {
            err(
                Some(Col::Name),
                "the school name is longer than 200 characters".into(),
            );
        }
        let ty = match cell(Col::Type) {
            "" => {
                err(Some(Col::Type), "the school type (学校类型) is empty; use one of teaching_point, primary, junior, nine_year, central or 教学点, 完全小学, 初中, 九年一贯制, 乡镇中心学校".into());
                None
            }
            s => match parse_school_type(s) {
                Some(t) => Some(t),
                None => {
                    err(Some(Col::Type), format!("unknown school type {s:?}; use one of teaching_point, primary, junior, nine_year, central or 教学点, 完全小学, 初中, 九年一贯制, 乡镇中心学校"));
                    None
                }
            },
        };
        let town = match cell(Col::TownCode) {
            "" => {
                err(
                    Some(Col::TownCode),
                    "the township code (乡镇代码) is empty".into(),
                );
                None
            }
            s => match TownshipId::new(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    err(Some(Col::TownCode), e.to_string());
                    None
                }
            },
        };
        let town_name = cell(Col::TownName).to_owned();
        if town_name.is_empty() {
            err(
                Some(Col::TownName),
                "the township name (乡镇名称) is empty".into(),
            );
        } else if town_name.chars().count() > 200 {
            err(
                Some(Col::TownName),
                "the township name is longer than 200 characters".into(),
            );
        }
        if let Some(t) = &town {
            if !town_name.is_empty() {
                match township_first.get(t) {
                    Some((first_name, first_line)) if *first_name != town_name => err(
                        Some(Col::TownName),
                        format!("township {t} is named {first_name:?} on line {first_line} but {town_name:?} here; use one name per township code"),
                    ),
                    Some(_) => {}
                    None => {
                        township_first.insert(t.clone(), (town_name.clone(), line));
                    }
                }
            }
        }
        let mut enrollment = [0u32; 9];
        let mut grades_ok = true;
        for (g, slot) in enrollment.iter_mut().enumerate() {
            match parse_count(cell(Col::Grade(g))) {
                Ok(n) => *slot = n,
                Err(m) => {
                    grades_ok = false;
                    err(Some(Col::Grade(g)), m);
                }
            }
        }

        if let (Some(code), Some(ty), Some(town), true, false, false) = (
            code,
            ty,
            town,
            grades_ok,
            name.is_empty(),
            town_name.is_empty(),
        ) {
            if seen_schools.contains_key(&code) {
                continue;
            }
            seen_schools.insert(code.clone(), line);
            out.schools.push(School {
                code,
                name,
                school_type: ty,
                township: town,
                enrollment,
            });
        }
    }
    out.townships = township_first
        .into_iter()
        .map(|(code, (name, _))| (code, name))
        .collect();
    out
}

fn csv_error(e: &csv::Error, fallback_line: u64) -> RowError {
    RowError {
        line: e.position().map(|p| p.line()).unwrap_or(fallback_line),
        column: None,
        message: format!("this line is not valid CSV: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_code_or_chinese() {
        assert_eq!(parse_school_type("教学点"), Some(SchoolType::TeachingPoint));
        assert_eq!(parse_school_type(" Nine_Year "), Some(SchoolType::NineYear));
        assert_eq!(parse_school_type("乡镇中心学校"), Some(SchoolType::Central));
        assert_eq!(parse_school_type("小学"), None);
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count(""), Ok(0));
        assert_eq!(parse_count(" 12 "), Ok(12));
        assert!(parse_count("-3").unwrap_err().contains("negative"));
        assert!(parse_count("abc")
            .unwrap_err()
            .contains("not a whole number"));
        assert!(parse_count("1.5")
            .unwrap_err()
            .contains("not a whole number"));
        assert!(parse_count("99999999999")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn headers_in_both_languages() {
        assert_eq!(column_of("学校标识码"), Some(Col::Code));
        assert_eq!(column_of(" School_Code "), Some(Col::Code));
        assert_eq!(column_of("\u{feff}school_code"), Some(Col::Code));
        assert_eq!(column_of("grade1"), Some(Col::Grade(0)));
        assert_eq!(column_of("grade_9"), Some(Col::Grade(8)));
        assert_eq!(column_of("九年级"), Some(Col::Grade(8)));
        assert_eq!(column_of("grade10"), None);
        assert_eq!(column_of("备注"), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFab").unwrap(), "ab");
        assert_eq!(decode_text("学校".as_bytes()).unwrap(), "学校");
        let (gbk, _, _) = encoding_rs::GBK.encode("学校名称");
        assert!(std::str::from_utf8(&gbk).is_err());
        assert_eq!(decode_text(&gbk).unwrap(), "学校名称");
        assert!(decode_text(b"\xFF\xFEa\x00")
            .unwrap_err()
            .contains("UTF-16"));
        assert!(decode_text(b"\xEF\xBB\xBF\xFF").is_err());
    }
}
