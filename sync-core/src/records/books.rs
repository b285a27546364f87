//! Book catalogue (图书).

use crate::schema::{opt, req, Choice, FieldType::*};
use crate::{choice, record};

choice! {
    /// 图书状态. 剔旧 and 遗失 are how a book leaves the shelf: its record stays.
    pub enum BookStatus {
        /// 在架
        OnShelf = "on_shelf",
        /// 借出
        OnLoan = "on_loan",
        /// 剔旧
        Weeded = "weeded",
        /// 遗失
        Lost = "lost",
    }
}

record! {
    /// 图书: one registered title (入册), with where it stands (上架).
    pub struct Book in Books."books" {
        /// 登记号 (accession number on the spine label)
        reg_no: String = req(Text),
        /// ISBN
        isbn: Option<String> = opt(Text),
        /// 书名
        title: String = req(Text),
        /// 作者
        author: Option<String> = opt(Text),
        /// 出版社
        publisher: Option<String> = opt(Text),
        /// 出版年
        pub_year: Option<u32> = opt(Count),
        /// 中图法分类号
        clc_class: Option<String> = opt(Text),
        /// 定价, in fen (分)
        price_fen: Option<i64> = opt(Money),
        /// 册数
        copies: u32 = req(Count),
        /// 书架 (上架 position)
        shelf: Option<String> = opt(Text),
        /// 入库日期
        received_on: Option<String> = opt(Date),
        status: BookStatus = req(Enum(BookStatus::VALUES)),
        status_reason: Option<String> = opt(Text),
        status_date: Option<String> = opt(Date),
    }
}
