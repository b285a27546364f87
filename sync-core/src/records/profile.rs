//! School profile (学校基本情况): one per school, at the root of its profile
//! document. Every field is optional: the profile fills in over time.

use crate::schema::{opt, FieldType::*};
use crate::{choice, record};

choice! {
    /// School type (学校类型).
    pub enum SchoolType {
        /// 教学点
        TeachingPoint = "teaching_point",
        /// 完全小学
        Primary = "primary",
        /// 初中
        Junior = "junior",
        /// 九年一贯制
        NineYear = "nine_year",
        /// 乡镇中心学校
        Central = "central",
    }
}

record! {
    /// 学校基本情况: the figures the resource indicators (R1–R7) are computed from.
    pub struct SchoolProfile in Profile."profile" singleton true {
        /// 学校标识码
        school_code: Option<String> = opt(Text),
        /// 学校名称
        name: Option<String> = opt(Text),
        /// 学校类型
        school_type: Option<SchoolType> = opt(Enum(<SchoolType as crate::schema::Choice>::VALUES)),
        /// 所属乡镇
        township: Option<String> = opt(Text),
        /// The central school a teaching point belongs to (中心校), by school code.
        parent_school: Option<String> = opt(Text),
        /// 一年级学生数
        students_grade_1: Option<u32> = opt(Count),
        students_grade_2: Option<u32> = opt(Count),
        students_grade_3: Option<u32> = opt(Count),
        students_grade_4: Option<u32> = opt(Count),
        students_grade_5: Option<u32> = opt(Count),
        students_grade_6: Option<u32> = opt(Count),
        /// 七年级 (初中) 学生数
        students_grade_7: Option<u32> = opt(Count),
        students_grade_8: Option<u32> = opt(Count),
        students_grade_9: Option<u32> = opt(Count),
        /// 班级数
        classes: Option<u32> = opt(Count),
        /// 专任教师数
        teachers_total: Option<u32> = opt(Count),
        /// 高于规定学历教师数 (R1)
        teachers_qualified: Option<u32> = opt(Count),
        /// 县级以上骨干教师数 (R2)
        teachers_key: Option<u32> = opt(Count),
        /// 体育、艺术专任教师数 (R3)
        teachers_pe_arts: Option<u32> = opt(Count),
        /// 教学及辅助用房面积 m² (R4)
        teaching_area_m2: Option<f64> = opt(Decimal),
        /// 体育运动场馆面积 m² (R5)
        sports_area_m2: Option<f64> = opt(Decimal),
        /// 网络多媒体教室数 (R7)
        multimedia_classrooms: Option<u32> = opt(Count),
    }
}
