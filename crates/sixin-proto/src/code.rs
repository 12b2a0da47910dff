//! Business codes and their exact messages (SPEC §7).

/// A business result code of the API. The numeric value is what goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiCode {
    Ok,
    NotLoggedIn,
    CsrfFailed,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    ServerError,
    InvalidArgument,
    MsgKeyNotFound,
    MessageTooLong,
    TooFast,
    SendToSelf,
    Maintenance,
    UnsupportedMsgType,
    BadImage,
    RecallExpired,
    AlreadyRecalled,
    DailyLimit,
    OneMessageLimit,
    PrivacyBlocked,
    YouBlocked,
    GroupDissolved,
    NotGroupMember,
    SessionNotFound,
    SelfRelation,
    FollowBlocked,
    AlreadyFollowed,
    AlreadyBlocked,
}

impl ApiCode {
    pub const ALL: [ApiCode; 29] = [
        ApiCode::Ok,
        ApiCode::NotLoggedIn,
        ApiCode::CsrfFailed,
        ApiCode::BadRequest,
        ApiCode::Forbidden,
        ApiCode::NotFound,
        ApiCode::MethodNotAllowed,
        ApiCode::ServerError,
        ApiCode::InvalidArgument,
        ApiCode::MsgKeyNotFound,
        ApiCode::MessageTooLong,
        ApiCode::TooFast,
        ApiCode::SendToSelf,
        ApiCode::Maintenance,
        ApiCode::UnsupportedMsgType,
        ApiCode::BadImage,
        ApiCode::RecallExpired,
        ApiCode::AlreadyRecalled,
        ApiCode::DailyLimit,
        ApiCode::OneMessageLimit,
        ApiCode::PrivacyBlocked,
        ApiCode::YouBlocked,
        ApiCode::GroupDissolved,
        ApiCode::NotGroupMember,
        ApiCode::SessionNotFound,
        ApiCode::SelfRelation,
        ApiCode::FollowBlocked,
        ApiCode::AlreadyFollowed,
        ApiCode::AlreadyBlocked,
    ];

    pub const fn code(self) -> i64 {
        match self {
            ApiCode::Ok => 0,
            ApiCode::NotLoggedIn => -101,
            ApiCode::CsrfFailed => -111,
            ApiCode::BadRequest => -400,
            ApiCode::Forbidden => -403,
            ApiCode::NotFound => -404,
            ApiCode::MethodNotAllowed => -405,
            ApiCode::ServerError => -500,
            ApiCode::InvalidArgument => 2,
            ApiCode::MsgKeyNotFound => 10005,
            ApiCode::MessageTooLong => 21007,
            ApiCode::TooFast => 21020,
            ApiCode::SendToSelf => 21026,
            ApiCode::Maintenance => 21028,
            ApiCode::UnsupportedMsgType => 21035,
            ApiCode::BadImage => 21037,
            ApiCode::RecallExpired => 21041,
            ApiCode::AlreadyRecalled => 21042,
            ApiCode::DailyLimit => 21046,
            ApiCode::OneMessageLimit => 21047,
            ApiCode::PrivacyBlocked => 25003,
            ApiCode::YouBlocked => 25005,
            ApiCode::GroupDissolved => 700013,
            ApiCode::NotGroupMember => 700014,
            ApiCode::SessionNotFound => 1000004,
            ApiCode::SelfRelation => 22001,
            ApiCode::FollowBlocked => 22003,
            ApiCode::AlreadyFollowed => 22014,
            ApiCode::AlreadyBlocked => 22120,
        }
    }

    pub const fn message(self) -> &'static str {
        match self {
            ApiCode::Ok => "0",
            ApiCode::NotLoggedIn => "账号未登录",
            ApiCode::CsrfFailed => "csrf 校验失败",
            ApiCode::BadRequest => "请求错误",
            ApiCode::Forbidden => "访问权限不足",
            ApiCode::NotFound => "啥都木有",
            ApiCode::MethodNotAllowed => "不支持该方法",
            ApiCode::ServerError => "服务器错误",
            ApiCode::InvalidArgument => "非法参数",
            ApiCode::MsgKeyNotFound => "msgkey不存在",
            ApiCode::MessageTooLong => "消息过长，无法发送",
            ApiCode::TooFast => "你发送消息频率过快，请稍后再发~",
            ApiCode::SendToSelf => "不能给自己发送消息哦~",
            ApiCode::Maintenance => "由于系统升级，暂无法发送，敬请谅解",
            ApiCode::UnsupportedMsgType => "该类消息暂时无法发送",
            ApiCode::BadImage => "图片格式不合法，不要调戏接口啦",
            ApiCode::RecallExpired => "消息已超期，不能撤回了哦",
            ApiCode::AlreadyRecalled => "消息已经撤回了哦",
            ApiCode::DailyLimit => "你发消息的频率太高了，请在24小时后再发吧~",
            ApiCode::OneMessageLimit => "对方主动回复或关注你前，最多发送1条消息~",
            ApiCode::PrivacyBlocked => "因对方隐私设置，暂无法给他发送聊天消息",
            ApiCode::YouBlocked => "你已拉黑了对方，请先将对方移出黑名单后才能聊天",
            ApiCode::GroupDissolved => "已解散QAQ，无法执行此操作",
            ApiCode::NotGroupMember => "你已不在此同萌中QAQ，无法执行此操作",
            ApiCode::SessionNotFound => "入口节点已存在",
            ApiCode::SelfRelation => "不能对自己进行此操作",
            ApiCode::FollowBlocked => "关注失败，请将该用户从黑名单中移出后再试",
            ApiCode::AlreadyFollowed => "已经关注用户，无法重复关注",
            ApiCode::AlreadyBlocked => "重复加入黑名单",
        }
    }

    pub fn from_code(code: i64) -> Option<ApiCode> {
        ApiCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for c in ApiCode::ALL {
            assert_eq!(ApiCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ApiCode::from_code(12345), None);
        assert_eq!(ApiCode::CsrfFailed.message(), "csrf 校验失败");
        assert_eq!(ApiCode::SessionNotFound.code(), 1000004);
    }
}
