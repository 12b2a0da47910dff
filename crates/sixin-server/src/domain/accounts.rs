//! Users, logins, relations and the account endpoints clients call.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sixin_proto::{ImUserInfo, LevelInfo, MyInfo, Nav, UserCard, VipInfo, WbiImg};

use super::{system, DomainError, Result, Service};
use crate::store::{Login, NewMessage, NewUser, Peer, Relation, StoreError, StoredMessage, User};

/// The authenticated user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub mid: u64,
    pub bili_jct: String,
}

/// The cookies of a fresh login, as `sixin user add` / `user login` print them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoginCookies {
    pub mid: u64,
    pub name: String,
    #[serde(rename = "SESSDATA")]
    pub sessdata: String,
    pub bili_jct: String,
    #[serde(rename = "DedeUserID")]
    pub dede_user_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewUserRequest {
    pub mid: Option<u64>,
    pub name: String,
    pub password: Option<String>,
    #[serde(default)]
    pub face: Option<String>,
    #[serde(default)]
    pub sign: Option<String>,
    #[serde(default)]
    pub level: Option<u8>,
}

/// Relation flags to change; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct RelationPatch {
    pub follow: Option<bool>,
    pub special: Option<bool>,
    pub block: Option<bool>,
}

const DEFAULT_FACE: &str = "https://i0.hdslb.com/bfs/face/member/noface.jpg";

pub(crate) fn sessdata_hash(sessdata: &str) -> String {
    hex::encode(Sha256::digest(sessdata.as_bytes()))
}

impl Service {
    /// The user a `SESSDATA` cookie names, if the login is known, unrevoked and unexpired.
    pub async fn authenticate(&self, sessdata: Option<&str>) -> Result<Caller> {
        // Browsers store the cookie percent-encoded (`,` → `%2C`); accept either form.
        let raw = sessdata
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(DomainError::NotLoggedIn)?;
        let login = match self.logins.get(raw) {
            Some(l) => l,
            None => {
                let hash = sessdata_hash(&percent_decode(raw));
                let l = self
                    .store
                    .login(&hash)
                    .await?
                    .ok_or(DomainError::NotLoggedIn)?;
                self.logins.put(raw, hash, l.clone());
                l
            }
        };
        if login.revoked || login.expires_ms <= self.clock.now_ms() {
            return Err(DomainError::NotLoggedIn);
        }
        Ok(Caller {
            mid: login.mid,
            bili_jct: login.bili_jct,
        })
    }

    /// The CSRF check of every POST: `csrf` or `csrf_token` equals the login's `bili_jct`.
    pub fn check_csrf(&self, caller: &Caller, csrf: Option<&str>) -> Result<()> {
        match csrf {
            Some(t) if !t.is_empty() && t == caller.bili_jct => Ok(()),
            _ => Err(DomainError::Csrf),
        }
    }

    pub async fn create_user(&self, req: NewUserRequest) -> Result<LoginCookies> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(DomainError::BadRequest("name must be 1 to 64 characters"));
        }
        if req.level.is_some_and(|l| l > 6) {
            return Err(DomainError::BadRequest("level must be 0 to 6"));
        }
        if req.mid == Some(0) || req.mid.is_some_and(|m| system::by_mid(m).is_some()) {
            return Err(DomainError::BadRequest("that mid is reserved"));
        }
        let password_hash = match req.password.as_deref() {
            Some(p) if !p.is_empty() => Some(hash_password(p)?),
            _ => None,
        };
        let user = self
            .store
            .create_user(
                NewUser {
                    mid: req.mid,
                    name: name.to_string(),
                    face: req.face.unwrap_or_else(|| DEFAULT_FACE.to_string()),
                    sign: req.sign.unwrap_or_default(),
                    level: req.level.unwrap_or(0),
                    password_hash,
                    system_msg_type: 0,
                },
                self.clock.now_ms(),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict => DomainError::Conflict("a user with that mid exists"),
                e => e.into(),
            })?;
        self.login_for(&user).await
    }

    /// A fresh login for an existing user.
    pub async fn create_login(&self, mid: u64) -> Result<LoginCookies> {
        let user = self.store.user(mid).await?.ok_or(DomainError::NotFound)?;
        if user.system_msg_type != 0 {
            return Err(DomainError::BadRequest("system accounts cannot log in"));
        }
        self.login_for(&user).await
    }

    /// Ends the login a `SESSDATA` cookie names (web logout); other logins stay valid.
    pub async fn logout(&self, sessdata: &str) -> Result<()> {
        let hash = sessdata_hash(&percent_decode(sessdata.trim()));
        self.store.revoke_login(&hash).await?;
        self.logins.forget(&hash);
        Ok(())
    }

    /// Checks a password and returns a fresh login (the web login).
    pub async fn login_with_password(&self, mid: u64, password: &str) -> Result<LoginCookies> {
        use argon2::{PasswordHash, PasswordVerifier};
        let user = self
            .store
            .user(mid)
            .await?
            .ok_or(DomainError::NotLoggedIn)?;
        let hash = user
            .password_hash
            .as_deref()
            .ok_or(DomainError::NotLoggedIn)?;
        let parsed = PasswordHash::new(hash).map_err(|_| DomainError::NotLoggedIn)?;
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| DomainError::NotLoggedIn)?;
        self.login_for(&user).await
    }

    async fn login_for(&self, user: &User) -> Result<LoginCookies> {
        // SESSDATA: 192 random bits in the upstream cookie's shape; only its hash is stored.
        let token = hex::encode(rand::random::<[u8; 24]>());
        let now_ms = self.clock.now_ms();
        let expires_ms = now_ms + self.config.login_ttl_days.max(1) * 86_400_000;
        let sessdata = format!("{},{},{}", &token[..32], expires_ms / 1000, &token[32..]);
        let bili_jct = hex::encode(rand::random::<[u8; 16]>());
        self.store
            .create_login(
                &sessdata_hash(&sessdata),
                &Login {
                    mid: user.mid,
                    bili_jct: bili_jct.clone(),
                    expires_ms,
                    revoked: false,
                },
                now_ms,
            )
            .await?;
        Ok(LoginCookies {
            mid: user.mid,
            name: user.name.clone(),
            sessdata,
            bili_jct,
            dede_user_id: user.mid.to_string(),
        })
    }

    /// Revokes every live login of `mid`; an unknown user is `NotFound` (like creating one).
    pub async fn revoke_logins(&self, mid: u64) -> Result<u64> {
        self.store.user(mid).await?.ok_or(DomainError::NotFound)?;
        let n = self.store.revoke_logins(mid).await?;
        self.logins.forget_mid(mid);
        Ok(n)
    }

    /// Changes the relation flags of `mid` towards `fid` as the operator asks (no API rules).
    pub async fn patch_relation(
        &self,
        mid: u64,
        fid: u64,
        patch: RelationPatch,
    ) -> Result<Relation> {
        if mid == fid {
            return Err(DomainError::BadRequest("mid and fid are the same user"));
        }
        for m in [mid, fid] {
            self.store.user(m).await?.ok_or(DomainError::NotFound)?;
        }
        let mut rel = self.store.relation(mid, fid).await?;
        if let Some(f) = patch.follow {
            rel.follow = f;
        }
        if let Some(s) = patch.special {
            rel.special = s;
        }
        if let Some(b) = patch.block {
            rel.block = b;
        }
        // A special follow is a kind of follow.
        rel.special &= rel.follow;
        self.store
            .set_relation(mid, fid, rel, self.clock.now_ms())
            .await?;
        Ok(rel)
    }

    /// Makes sure the built-in system accounts exist.
    pub async fn ensure_system_accounts(&self) -> Result<()> {
        for a in &system::SYSTEM_ACCOUNTS {
            self.store
                .upsert_system_user(a.as_new_user(), self.clock.now_ms())
                .await?;
        }
        Ok(())
    }

    /// Delivers a message from a system account (notification cards and the like).
    pub async fn inject_system_message(
        &self,
        from: u64,
        to: u64,
        msg_type: u32,
        content: String,
        notify_code: String,
        msg_source: u32,
    ) -> Result<StoredMessage> {
        if system::by_mid(from).is_none() {
            return Err(DomainError::BadRequest("sender is not a system account"));
        }
        let user = self.store.user(to).await?.ok_or(DomainError::NotFound)?;
        if user.system_msg_type != 0 {
            return Err(DomainError::BadRequest("receiver is a system account"));
        }
        if serde_json::from_str::<serde_json::Value>(&content).is_err() {
            return Err(DomainError::BadRequest("content must be JSON text"));
        }
        let keys = self.keys.clone();
        let now_ms = self.clock.now_ms();
        let mut stored = self
            .insert_messages(
                Peer::Pair { a: from, b: to },
                crate::store::Insert {
                    messages: vec![NewMessage {
                        sender_uid: from,
                        receiver_type: 1,
                        receiver_id: to,
                        msg_type,
                        content,
                        at_uids: None,
                        notify_code,
                        new_face_version: 1,
                        msg_source,
                        visible_to: None,
                        dev_id: String::new(),
                        manual: false,
                        push: true,
                        official: msg_source == super::relations::SOURCE_OFFICIAL_PUSH,
                    }],
                    sender_reads: true,
                    ..crate::store::Insert::plain(Vec::new(), self.clock.now_us())
                },
                std::sync::Arc::new(move || keys.next(now_ms)),
            )
            .await?;
        stored.pop().ok_or(DomainError::NotFound)
    }

    pub async fn nav(&self, caller: Option<&Caller>) -> Result<Nav> {
        let (img, sub) = self.wbi_keys(self.wbi_day());
        let wbi_img = WbiImg {
            img_url: format!("https://i0.hdslb.com/bfs/wbi/{img}.png"),
            sub_url: format!("https://i0.hdslb.com/bfs/wbi/{sub}.png"),
        };
        let user = match caller {
            Some(c) => self.store.user(c.mid).await?,
            None => None,
        };
        Ok(match user {
            Some(u) => Nav {
                is_login: true,
                mid: Some(u.mid),
                uname: Some(u.name.clone()),
                face: Some(u.face.clone()),
                level_info: Some(level_info(u.level)),
                wbi_img,
            },
            None => Nav {
                is_login: false,
                mid: None,
                uname: None,
                face: None,
                level_info: None,
                wbi_img,
            },
        })
    }

    pub async fn my_info(&self, caller: &Caller) -> Result<MyInfo> {
        let u = self
            .store
            .user(caller.mid)
            .await?
            .ok_or(DomainError::NotLoggedIn)?;
        let (following, follower) = self.store.follow_counts(u.mid).await?;
        Ok(MyInfo {
            mid: u.mid,
            name: u.name,
            sex: "保密".into(),
            face: u.face,
            sign: u.sign,
            rank: 10000,
            level: u.level,
            jointime: u.created_ms / 1000,
            moral: 70,
            silence: 0,
            email_status: 0,
            tel_status: 1,
            identification: 0,
            birthday: 0,
            is_tourist: 0,
            is_fake_account: 0,
            pin_prompting: 0,
            is_deleted: 0,
            coins: 0.0,
            following,
            follower,
        })
    }

    /// Cards of the known mids among `mids`, in the order asked.
    pub async fn cards(&self, mids: &[u64]) -> Result<Vec<UserCard>> {
        let users = self.store.users(mids).await?;
        Ok(mids
            .iter()
            .filter_map(|m| users.iter().find(|u| u.mid == *m))
            .map(|u| UserCard {
                mid: u.mid,
                name: u.name.clone(),
                face: u.face.clone(),
                sign: u.sign.clone(),
                rank: 10000,
                level: u.level,
                silence: 0,
            })
            .collect())
    }

    pub async fn im_user_infos(&self, mids: &[u64]) -> Result<Vec<ImUserInfo>> {
        Ok(self
            .cards(mids)
            .await?
            .into_iter()
            .map(|card| ImUserInfo {
                card,
                vip: VipInfo::default(),
                pendant: serde_json::json!({"pid": 0, "name": "", "image": ""}),
                official: serde_json::json!({"role": 0, "title": "", "desc": "", "type": -1}),
            })
            .collect())
    }
}

fn level_info(level: u8) -> LevelInfo {
    const MIN: [u64; 7] = [0, 1, 200, 1500, 4500, 10800, 28800];
    let l = usize::from(level.min(6));
    LevelInfo {
        current_level: level.min(6),
        current_min: MIN[l],
        current_exp: MIN[l],
        next_exp: if l == 6 {
            serde_json::Value::String("--".into())
        } else {
            serde_json::Value::from(MIN[l + 1])
        },
    }
}

fn hash_password(p: &str) -> Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| DomainError::BadRequest("password cannot be hashed"))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
