//! Archive (档案): each catalogue item's status at the school, and boxes (归档入盒).

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record, RecordId};

choice! {
    /// Where an archive item stands (查漏补缺).
    pub enum ArchiveItemStatus {
        /// 缺失
        Missing = "missing",
        /// 收集中
        Collecting = "collecting",
        /// 已归档
        Filed = "filed",
        /// 撤销 (entered by mistake; kept with a reason)
        Withdrawn = "withdrawn",
    }
}

choice! {
    /// 保管期限
    pub enum Retention {
        /// 永久
        Permanent = "permanent",
        /// 30年
        Years30 = "30y",
        /// 10年
        Years10 = "10y",
    }
}

record! {
    /// 档案条目: the school's evidence for one item of the county catalogue.
    pub struct ArchiveItem in Archive."items" {
        /// The county catalogue entry this item answers (a [`crate::records::CatalogueEntry`] id).
        catalogue_entry: RecordId = req(Ref),
        status: ArchiveItemStatus = req(Enum(ArchiveItemStatus::VALUES)),
        /// The box it is filed in (an [`ArchiveBox`] id).
        box_id: Option<RecordId> = opt(Ref),
        /// 卷内序号 / folder number
        folder_no: Option<String> = opt(Text),
        /// 题名
        title: Option<String> = opt(Text),
        /// 文号
        document_no: Option<String> = opt(Text),
        /// 日期
        doc_date: Option<String> = opt(Date),
        /// 页数
        pages: Option<u32> = opt(Count),
        /// 备注
        note: Option<String> = opt(Text),
        status_reason: Option<String> = opt(Text),
    }
}

choice! {
    /// Whether a box is in use.
    pub enum BoxStatus {
        Active = "active",
        /// 撤盒 (merged or relabelled; kept with a reason)
        Retired = "retired",
    }
}

record! {
    /// 档案盒: a numbered box and its spine fields (盒脊).
    pub struct ArchiveBox in Archive."boxes" {
        /// 盒号
        box_no: String = req(Text),
        /// 年度
        year: u32 = req(Count),
        /// 保管期限
        retention: Retention = req(Enum(Retention::VALUES)),
        /// 类别
        category: String = req(Text),
        /// 起止件号
        first_item_no: Option<String> = opt(Text),
        last_item_no: Option<String> = opt(Text),
        status: BoxStatus = req(Enum(BoxStatus::VALUES)),
        status_reason: Option<String> = opt(Text),
    }
}
