//! Equipment ledger (仪器设备台账) and stocktakes (盘点).

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record, RecordId};

choice! {
    /// 设备状态. 报废 and 盘亏 are how an item leaves the ledger: its record stays.
    pub enum EquipmentStatus {
        /// 在用
        InUse = "in_use",
        /// 闲置
        Idle = "idle",
        /// 维修
        Repair = "repair",
        /// 损坏
        Damaged = "damaged",
        /// 报废
        Scrapped = "scrapped",
        /// 盘亏
        Missing = "missing",
    }
}

record! {
    /// 仪器设备: one line of the equipment ledger.
    pub struct EquipmentItem in Equipment."items" {
        /// 资产编号
        asset_no: String = req(Text),
        /// 名称
        name: String = req(Text),
        /// 分类代码 (GB/T 14885)
        category_code: Option<String> = opt(Text),
        /// 品牌
        brand: Option<String> = opt(Text),
        /// 型号
        model: Option<String> = opt(Text),
        /// 规格
        spec: Option<String> = opt(Text),
        /// 计量单位
        unit: Option<String> = opt(Text),
        /// 数量
        quantity: u32 = req(Count),
        /// 单价, in fen (分)
        unit_price_fen: i64 = req(Money),
        /// 经费来源
        funding_source: Option<String> = opt(Text),
        /// 保管人
        keeper: Option<String> = opt(Text),
        /// 存放地点 (room)
        room: Option<String> = opt(Text),
        /// 购置日期
        acquired_on: Option<String> = opt(Date),
        /// 状态
        status: EquipmentStatus = req(Enum(EquipmentStatus::VALUES)),
        /// Why the status was set (报废原因…)
        status_reason: Option<String> = opt(Text),
        /// When the status was set
        status_date: Option<String> = opt(Date),
    }
}

impl EquipmentItem {
    /// 金额: quantity × unit price, in fen.
    pub fn value_fen(&self) -> i64 {
        self.unit_price_fen.saturating_mul(self.quantity as i64)
    }
}

choice! {
    /// Whether a stocktake session is still counting.
    pub enum StocktakeStatus {
        /// 进行中
        Open = "open",
        /// 已结束
        Closed = "closed",
    }
}

record! {
    /// 盘点: a stocktake session for one room or the whole school.
    pub struct StocktakeSession in Equipment."stocktakes" {
        /// 名称
        title: String = req(Text),
        /// The room counted; none for the whole school.
        room: Option<String> = opt(Text),
        /// 开始日期
        started_on: String = req(Date),
        status: StocktakeStatus = req(Enum(StocktakeStatus::VALUES)),
        /// 结束日期
        closed_on: Option<String> = opt(Date),
    }
}

choice! {
    /// 盘点结果 for one counted item.
    pub enum StocktakeResult {
        /// 相符
        Match = "match",
        /// 盘盈
        Surplus = "surplus",
        /// 盘亏
        Shortage = "shortage",
        /// 损坏
        Damaged = "damaged",
    }
}

record! {
    /// One counted item in a stocktake, by one device. Two phones counting at once
    /// add lines; they never overwrite each other's count.
    pub struct StocktakeLine in Equipment."stocktake_lines" {
        /// The session (a [`StocktakeSession`] id).
        session: RecordId = req(Ref),
        /// The ledger item counted; none for an item found but not on the ledger (盘盈).
        item: Option<RecordId> = opt(Ref),
        /// What was found, when it is not on the ledger.
        description: Option<String> = opt(Text),
        /// 账面数量
        recorded_qty: u32 = req(Count),
        /// 实盘数量
        counted_qty: u32 = req(Count),
        result: StocktakeResult = req(Enum(StocktakeResult::VALUES)),
        /// The device that counted.
        counted_by_device: String = req(Text),
        /// 备注
        note: Option<String> = opt(Text),
    }
}

impl StocktakeResult {
    /// The result of counting `counted` where the ledger says `recorded`:
    /// 损坏 if the counter marked it damaged, else 相符, 盘盈 or 盘亏.
    pub fn classify(recorded: u32, counted: u32, damaged: bool) -> Self {
        use std::cmp::Ordering::*;
        match (damaged, counted.cmp(&recorded)) {
            (true, _) => StocktakeResult::Damaged,
            (false, Equal) => StocktakeResult::Match,
            (false, Greater) => StocktakeResult::Surplus,
            (false, Less) => StocktakeResult::Shortage,
        }
    }
}

/// What a counter entered for one item of a stocktake session.
#[derive(Clone, Debug, PartialEq)]
pub struct StocktakeCount {
    pub session: RecordId,
    /// The ledger item counted, or `None` for something found that is not
    /// in the ledger (then `description` says what).
    pub item: Option<RecordId>,
    pub description: Option<String>,
    pub counted_qty: u32,
    pub damaged: bool,
    pub note: Option<String>,
    /// The counting device.
    pub device: String,
}

impl StocktakeLine {
    /// The line for a count, with the ledger's quantity read from the
    /// equipment document `doc` (0 for an item not in the ledger) and the
    /// result classified. Fails if the session or item does not exist, or
    /// an unlisted find has no description.
    pub fn from_count(doc: &crate::RecordDoc, count: StocktakeCount) -> crate::Result<Self> {
        let missing = |id| crate::Error::RecordNotFound {
            doc: doc.id().clone(),
            id,
        };
        doc.get::<StocktakeSession>(count.session)?
            .ok_or_else(|| missing(count.session))?;
        let recorded_qty = match count.item {
            Some(id) => {
                doc.get::<EquipmentItem>(id)?
                    .ok_or_else(|| missing(id))?
                    .quantity
            }
            None if count
                .description
                .as_deref()
                .is_none_or(|d| d.trim().is_empty()) =>
            {
                return Err(crate::Error::InvalidValue {
                    kind: "StocktakeLine",
                    field: "description",
                    problem: "an item not in the ledger needs a description of what was found"
                        .into(),
                })
            }
            None => 0,
        };
        Ok(StocktakeLine {
            session: count.session,
            item: count.item,
            description: count.description,
            recorded_qty,
            counted_qty: count.counted_qty,
            result: StocktakeResult::classify(recorded_qty, count.counted_qty, count.damaged),
            counted_by_device: count.device,
            note: count.note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::samples;
    use crate::{DocId, DocKind, EditContext, RecordDoc, SchoolId};

    #[test]
    fn counts_are_classified_against_the_ledger() {
        assert_eq!(
            StocktakeResult::classify(12, 12, false),
            StocktakeResult::Match
        );
        assert_eq!(
            StocktakeResult::classify(12, 13, false),
            StocktakeResult::Surplus
        );
        assert_eq!(
            StocktakeResult::classify(12, 11, false),
            StocktakeResult::Shortage
        );
        assert_eq!(
            StocktakeResult::classify(12, 12, true),
            StocktakeResult::Damaged
        );

        let ctx = EditContext {
            user: "t1".parse().unwrap(),
            device: "p1".parse().unwrap(),
            now_ms: 0,
        };
        let school = SchoolId::new("4301230001").unwrap();
        let mut doc = RecordDoc::genesis(DocId::school(&school, DocKind::Equipment).unwrap());
        let item = RecordId::random();
        doc.insert(&ctx, item, &samples::equipment(1)).unwrap();
        let session = RecordId::random();
        doc.insert(
            &ctx,
            session,
            &StocktakeSession {
                title: "秋季盘点".into(),
                room: None,
                started_on: "2026-11-01".into(),
                status: StocktakeStatus::Open,
                closed_on: None,
            },
        )
        .unwrap();
        let count = |item, description: Option<&str>, counted| StocktakeCount {
            session,
            item,
            description: description.map(Into::into),
            counted_qty: counted,
            damaged: false,
            note: None,
            device: "p1".into(),
        };
        let line = StocktakeLine::from_count(&doc, count(Some(item), None, 11)).unwrap();
        assert_eq!(
            (line.recorded_qty, line.result),
            (12, StocktakeResult::Shortage)
        );
        let found = StocktakeLine::from_count(&doc, count(None, Some("旧地球仪"), 1)).unwrap();
        assert_eq!(
            (found.recorded_qty, found.result),
            (0, StocktakeResult::Surplus)
        );
        assert!(StocktakeLine::from_count(&doc, count(None, None, 1)).is_err());
        assert!(StocktakeLine::from_count(&doc, count(Some(RecordId::random()), None, 1)).is_err());
        let mut other = count(Some(item), None, 1);
        other.session = RecordId::random();
        assert!(StocktakeLine::from_count(&doc, other).is_err());
    }
}
