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
