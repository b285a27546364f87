//! Access rules, over an in-memory view of the organisation so that the sync
//! core's check of each document is a map lookup.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sync_core::records::{review_level, ReviewEvent, ReviewLevel};
use sync_core::sync::{Access, AccessPolicy};
use sync_core::{CountyId, DocId, DocKind, DocOwner, RecordDoc, SchoolId};

use crate::model::{County, Role, Scope, TownshipId};

/// The organisation as the access rules see it: the county, and each
/// registered school's township. Rebuilt whenever the county or the school
/// list changes; policies hold the snapshot they were built from.
#[derive(Debug, Default)]
pub(crate) struct OrgView {
    pub county: Option<County>,
    pub schools: BTreeMap<SchoolId, TownshipId>,
    pub townships: BTreeSet<TownshipId>,
}

#[derive(Clone, Debug)]
enum Grant {
    Teacher(SchoolId),
    Township(TownshipId),
    County(CountyId),
    Admin,
}

/// One caller's access rules, for the sync core:
///
/// - teacher: reads and writes every document of their school (its review
///   document included) and reads the county template;
/// - township: reads and writes every document of the schools in their
///   township and reads the county template;
/// - county: reads every document of every registered school, writes their
///   review documents (acceptance), and reads and writes the county template;
///
/// and, inside a review document, each caller records only the review steps
/// of their own level, under their own name, and changes no recorded step
/// ([`AccessPolicy::check_write`]).
/// - admin: no documents.
///
/// Documents of schools that are not registered, and other counties'
/// templates, are refused to everyone.
#[derive(Clone, Debug)]
pub struct CallerPolicy {
    who: String,
    username: String,
    grant: Grant,
    org: Arc<OrgView>,
}

impl CallerPolicy {
    pub(crate) fn new(
        org: Arc<OrgView>,
        username: &str,
        role: Role,
        unit: Option<&str>,
    ) -> Result<Self, String> {
        let unit_str = unit.unwrap_or("");
        let grant = match role {
            Role::Teacher => Grant::Teacher(unit_str.parse().map_err(|e| format!("{e}"))?),
            Role::Township => Grant::Township(unit_str.parse().map_err(|e| format!("{e}"))?),
            Role::County => Grant::County(unit_str.parse().map_err(|e| format!("{e}"))?),
            Role::Admin => Grant::Admin,
        };
        let who = match &grant {
            Grant::Teacher(s) => format!("teacher '{username}' of school {s}"),
            Grant::Township(t) => format!("township user '{username}' of township {t}"),
            Grant::County(c) => format!("county user '{username}' of county {c}"),
            Grant::Admin => format!("administrator '{username}'"),
        };
        Ok(Self {
            who,
            username: username.to_owned(),
            grant,
            org,
        })
    }

    fn county_code(&self) -> Option<&CountyId> {
        self.org.county.as_ref().map(|c| &c.code)
    }

    /// Why not, or `None` if allowed.
    fn refusal(&self, doc: &DocId, access: Access) -> Option<String> {
        let write = access == Access::Write;
        if let Grant::Admin = self.grant {
            return Some(
                "administrators manage accounts and the school list and sync no documents; sign in as a teacher, township or county user"
                    .into(),
            );
        }
        match doc.owner() {
            DocOwner::School(school) => {
                let Some(township) = self.org.schools.get(school) else {
                    return Some(format!(
                        "school {school} is not in this county's school list; the county administrator must import it first"
                    ));
                };
                match &self.grant {
                    Grant::Teacher(own) if own == school => None,
                    Grant::Teacher(_) => Some(format!(
                        "it belongs to school {school}, and a teacher works only on their own school"
                    )),
                    Grant::Township(own) if own == township => None,
                    Grant::Township(_) => Some(format!(
                        "school {school} belongs to township {township}, not to yours"
                    )),
                    Grant::County(_) if !write => None,
                    Grant::County(_) if doc.kind() == DocKind::Review => None,
                    Grant::County(_) => Some(
                        "the county reads schools' documents (and records its acceptance in their review documents); only the school and its township change them"
                            .into(),
                    ),
                    Grant::Admin => unreachable!("handled above"),
                }
            }
            DocOwner::County(county) => {
                if self.county_code() != Some(county) {
                    return Some(match self.county_code() {
                        Some(ours) => format!(
                            "this server serves county {ours}, not county {county}"
                        ),
                        None => "this server's county is not set yet; the administrator must set it first".into(),
                    });
                }
                match &self.grant {
                    Grant::County(own) if own == county => None,
                    Grant::County(_) => Some(format!("you belong to another county than {county}")),
                    _ if !write => None,
                    _ => Some("only county users change the county's template; schools and townships read it".into()),
                }
            }
        }
    }

    /// The documents this caller may read and write, for `/v1/me` and for
    /// choosing what a sync covers.
    pub fn scope(&self) -> Scope {
        let mut scope = Scope::default();
        let mut add = |doc: DocId, write: bool| {
            if write {
                scope.write.insert(doc.clone());
            }
            scope.read.insert(doc);
        };
        let template = self.county_code().map(DocId::template);
        match &self.grant {
            Grant::Admin => {}
            Grant::Teacher(own) => {
                if self.org.schools.contains_key(own) {
                    DocId::all_for_school(own)
                        .into_iter()
                        .for_each(|d| add(d, true));
                }
                template.into_iter().for_each(|d| add(d, false));
            }
            Grant::Township(own) => {
                for (school, _) in self.org.schools.iter().filter(|(_, t)| *t == own) {
                    DocId::all_for_school(school)
                        .into_iter()
                        .for_each(|d| add(d, true));
                }
                template.into_iter().for_each(|d| add(d, false));
            }
            Grant::County(own) => {
                for school in self.org.schools.keys() {
                    DocId::all_for_school(school).into_iter().for_each(|d| {
                        let review = d.kind() == DocKind::Review;
                        add(d, review)
                    });
                }
                if self.county_code() == Some(own) {
                    template.into_iter().for_each(|d| add(d, true));
                }
            }
        }
        scope
    }
}

impl CallerPolicy {
    fn level(&self) -> Option<ReviewLevel> {
        match self.grant {
            Grant::Teacher(_) => Some(ReviewLevel::School),
            Grant::Township(_) => Some(ReviewLevel::Township),
            Grant::County(_) => Some(ReviewLevel::County),
            Grant::Admin => None,
        }
    }

    /// Why the review steps `after` adds to `before` are not this caller's
    /// to record, if they are not.
    fn review_refusal(&self, before: &RecordDoc, after: &RecordDoc) -> Option<String> {
        let read = |d: &RecordDoc| d.list::<ReviewEvent>().map_err(|e| e.to_string());
        let old: BTreeMap<_, _> = match read(before) {
            Ok(v) => v.into_iter().collect(),
            Err(e) => return Some(e),
        };
        let new = match read(after) {
            Ok(v) => v,
            Err(e) => return Some(e),
        };
        for (id, e) in new {
            match old.get(&id) {
                Some(o) if *o == e => continue,
                Some(_) => {
                    return Some(format!(
                        "review step {id} was changed; a recorded step is never changed, record a new step instead"
                    ))
                }
                None => {}
            }
            if e.by_user != self.username {
                return Some(format!(
                    "review step {id} is recorded under the name '{}'; record steps under your own name ('{}')",
                    e.by_user, self.username
                ));
            }
            let needed = review_level(e.section, e.action);
            if needed.is_none() || needed != self.level() {
                let who = match needed {
                    Some(ReviewLevel::School) => "the school",
                    Some(ReviewLevel::Township) => "the township",
                    Some(ReviewLevel::County) => "the county",
                    None => "nobody",
                };
                return Some(format!(
                    "review step {id} is a '{}' of '{}', which only {who} may record",
                    e.action.code(),
                    e.section.code()
                ));
            }
        }
        None
    }
}

impl AccessPolicy for CallerPolicy {
    fn check_write(&self, before: &RecordDoc, after: &RecordDoc) -> Result<(), String> {
        if after.kind() != DocKind::Review {
            return Ok(());
        }
        match self.review_refusal(before, after) {
            None => Ok(()),
            Some(why) => Err(format!("{} may not write {}: {why}", self.who, after.id())),
        }
    }

    fn check(&self, doc: &DocId, access: Access) -> Result<(), String> {
        match self.refusal(doc, access) {
            None => Ok(()),
            Some(why) => Err(format!(
                "{} may not {} {doc}: {why}",
                self.who,
                match access {
                    Access::Read => "read",
                    Access::Write => "write",
                }
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn policy_is_send_and_sync() {
        assert_send_sync::<CallerPolicy>();
    }

    #[test]
    fn a_malformed_unit_is_an_error_not_a_grant() {
        let org = Arc::new(OrgView::default());
        assert!(CallerPolicy::new(org.clone(), "x", Role::Teacher, None).is_err());
        assert!(CallerPolicy::new(org.clone(), "x", Role::Township, Some("a.b")).is_err());
        assert!(CallerPolicy::new(org, "x", Role::Admin, None).is_ok());
    }
}
