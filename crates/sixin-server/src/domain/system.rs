//! The built-in system accounts (SPEC §3): reserved mids that deliver notifications.

use crate::store::NewUser;

pub struct SystemAccount {
    pub mid: u64,
    pub system_msg_type: u8,
    pub name: &'static str,
    pub pic_url: &'static str,
}

const PIC: &str = "https://message.biliimg.com/bfs/im/489a63efadfb202366c2f88853d2217b5ddc7a13.png";

/// sixin's system senders. The mids of 主播小助手, UP主小助手 and 支付小助手 are the ones the
/// upstream service uses; the others are reserved next to them.
pub const SYSTEM_ACCOUNTS: [SystemAccount; 5] = [
    SystemAccount {
        mid: 844424930131967,
        system_msg_type: 1,
        name: "主播小助手",
        pic_url: PIC,
    },
    SystemAccount {
        mid: 844424930131968,
        system_msg_type: 5,
        name: "系统通知",
        pic_url: PIC,
    },
    SystemAccount {
        mid: 844424930131966,
        system_msg_type: 7,
        name: "UP主小助手",
        pic_url: PIC,
    },
    SystemAccount {
        mid: 844424930131969,
        system_msg_type: 8,
        name: "客服消息",
        pic_url: PIC,
    },
    SystemAccount {
        mid: 844424930131965,
        system_msg_type: 9,
        name: "支付小助手",
        pic_url: PIC,
    },
];

/// `system_msg_type` of 客服消息, whose messages count in `custom_unread`.
pub const CUSTOMER_SERVICE: u8 = 8;

pub fn by_type(system_msg_type: u8) -> Option<&'static SystemAccount> {
    SYSTEM_ACCOUNTS
        .iter()
        .find(|a| a.system_msg_type == system_msg_type)
}

pub fn by_mid(mid: u64) -> Option<&'static SystemAccount> {
    SYSTEM_ACCOUNTS.iter().find(|a| a.mid == mid)
}

impl SystemAccount {
    pub fn as_new_user(&self) -> NewUser {
        NewUser {
            mid: Some(self.mid),
            name: self.name.to_string(),
            face: self.pic_url.to_string(),
            sign: String::new(),
            level: 6,
            password_hash: None,
            system_msg_type: self.system_msg_type,
        }
    }
}
