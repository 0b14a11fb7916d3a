//! An open-loop HTTP/1.1 load generator on a single thread, for the latency phase.
//!
//! The load generator shares the machine's two cores with the server it measures, so every
//! thread hand-off and every wake-up in the generator shows up in the measured latency. This
//! one does everything on one thread with one `epoll` set: a `timerfd` armed at the next
//! intended send time (nanosecond resolution, where a sleeping async timer would round to the
//! millisecond), the request written at once on an idle keep-alive connection (a new one is
//! opened when none is idle, so a slow answer never delays the next send), and each answer read
//! and parsed with `httparse` as soon as its socket is readable.
//!
//! Each latency runs from the request's intended send time, so a late send (the thread was not
//! running) counts against the measurement, never for it: there is no coordinated omission.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rustix::event::epoll;
use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec,
};

/// The epoll key of the timer; connections use their index.
const TIMER: u64 = u64::MAX;

/// One answered request.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// From the intended send time to the whole answer read.
    pub from_intended: Duration,
    /// From the moment the request was written to the whole answer read.
    pub from_sent: Duration,
}

/// What one run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every answer, in the order they arrived.
    pub answers: Vec<Answer>,
    /// Requests written more than a millisecond after their intended time.
    pub late_sends: u64,
    /// Requests without an answer, by what went wrong.
    pub failures: BTreeMap<&'static str, u64>,
    /// Connections opened.
    pub connections: usize,
}

impl Outcome {
    /// How many answers were 2xx.
    pub fn accepted(&self) -> u64 {
        self.answers
            .iter()
            .filter(|a| (200..300).contains(&a.status))
            .count() as u64
    }
}

/// Sorted latencies, read as percentiles in milliseconds.
pub struct Percentiles(Vec<Duration>);

impl Percentiles {
    pub fn of(latencies: impl Iterator<Item = Duration>) -> Percentiles {
        let mut sorted: Vec<Duration> = latencies.collect();
        sorted.sort_unstable();
        Percentiles(sorted)
    }

    /// The `p` quantile (0 to 1) in milliseconds: the smallest latency that at least that share
    /// of requests did not exceed.
    pub fn at(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let at = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[at].as_secs_f64() * 1e3
    }

    /// p50 / p90 / p99 / max.
    pub fn summary(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            self.at(0.50),
            self.at(0.90),
            self.at(0.99),
            self.at(1.0)
        )
    }
}

/// A keep-alive connection and the request it waits on, if any.
struct Conn {
    stream: TcpStream,
    /// `(intended, sent)` in monotonic nanoseconds while a request is outstanding.
    waiting: Option<(u64, u64)>,
    answer: Vec<u8>,
}

/// The monotonic clock in nanoseconds, the clock the timer is armed on.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i64,
    }
}

/// Sends `requests` (each a whole HTTP/1.1 request) to `addr` at `rate` per second, the first
/// 10 ms from now, and waits up to `patience` after the last send for outstanding answers.
pub fn run(
    addr: &str,
    rate: u64,
    requests: Vec<Vec<u8>>,
    patience: Duration,
) -> std::io::Result<Outcome> {
    let total = requests.len();
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let timer = rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    epoll::add(
        &epoll,
        &timer,
        epoll::EventData::new_u64(TIMER),
        epoll::EventFlags::IN,
    )?;
    let start = now_ns() + 10_000_000;
    let intended = |idx: usize| start + (idx as u128 * 1_000_000_000 / u128::from(rate)) as u64;
    let arm = |at: u64| {
        rustix::time::timerfd_settime(
            &timer,
            TimerfdTimerFlags::ABSTIME,
            &Itimerspec {
                it_interval: timespec(0),
                it_value: timespec(at),
            },
        )
    };
    arm(intended(0))?;

    let mut out = Outcome {
        answers: Vec::with_capacity(total),
        ..Outcome::default()
    };
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut idle: Vec<usize> = Vec::new();
    let mut requests = requests.into_iter();
    let mut sent = 0usize;
    let mut outstanding = 0usize;
    let mut last_send = start;
    let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
    let tick = timespec(50_000_000);
    let fail = |out: &mut Outcome, what: &'static str| *out.failures.entry(what).or_insert(0) += 1;

    while sent < total || outstanding > 0 {
        if sent == total && now_ns() > last_send + patience.as_nanos() as u64 {
            *out.failures.entry("no answer in time").or_insert(0) += outstanding as u64;
            break;
        }
        events.clear();
        match epoll::wait(
            &epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&tick),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err.into()),
        }
        for event in events.iter() {
            let key = event.data.u64();
            if key == TIMER {
                let mut expirations = [0u8; 8];
                let _ = rustix::io::read(&timer, &mut expirations);
                let now = now_ns();
                while sent < total && intended(sent) <= now {
                    let due = intended(sent);
                    if now - due > 1_000_000 {
                        out.late_sends += 1;
                    }
                    let request = requests.next().unwrap_or_default();
                    sent += 1;
                    match send(addr, &epoll, &mut conns, &mut idle, &request, due) {
                        Ok(written_at) => {
                            outstanding += 1;
                            last_send = written_at;
                        }
                        Err(what) => fail(&mut out, what),
                    }
                }
                if sent < total {
                    arm(intended(sent))?;
                }
                continue;
            }
            let slot = key as usize;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            match read_answer(conn) {
                Ok(None) => {}
                Ok(Some((status, close))) => {
                    let done = now_ns();
                    if let Some((due, written_at)) = conn.waiting.take() {
                        outstanding -= 1;
                        out.answers.push(Answer {
                            status,
                            from_intended: Duration::from_nanos(done - due),
                            from_sent: Duration::from_nanos(done - written_at),
                        });
                    }
                    conn.answer.clear();
                    if close {
                        drop_conn(&epoll, &mut conns, slot);
                    } else {
                        idle.push(slot);
                    }
                }
                Err(what) => {
                    if conn.waiting.take().is_some() {
                        outstanding -= 1;
                        fail(&mut out, what);
                    }
                    drop_conn(&epoll, &mut conns, slot);
                    idle.retain(|&s| s != slot);
                }
            }
        }
    }
    out.connections = conns.len();
    Ok(out)
}

/// Writes `request`, intended at `due`, on an idle connection or a new one; when it was written,
/// or what failed (a connection that failed to write is dropped).
fn send(
    addr: &str,
    epoll: &impl std::os::fd::AsFd,
    conns: &mut Vec<Option<Conn>>,
    idle: &mut Vec<usize>,
    request: &[u8],
    due: u64,
) -> Result<u64, &'static str> {
    let slot = match idle.pop() {
        Some(slot) => slot,
        None => {
            let conn = connect(addr, epoll, conns.len()).map_err(|_| "connect error")?;
            conns.push(Some(conn));
            conns.len() - 1
        }
    };
    let Some(conn) = conns[slot].as_mut() else {
        return Err("connection gone");
    };
    let written_at = now_ns();
    if write_whole(&mut conn.stream, request).is_err() {
        drop_conn(epoll, conns, slot);
        return Err("write error");
    }
    conn.waiting = Some((due, written_at));
    Ok(written_at)
}

/// Opens a keep-alive connection and adds it to the epoll set under `key`.
fn connect(addr: &str, epoll: &impl std::os::fd::AsFd, key: usize) -> std::io::Result<Conn> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    epoll::add(
        epoll,
        &stream,
        epoll::EventData::new_u64(key as u64),
        epoll::EventFlags::IN,
    )?;
    Ok(Conn {
        stream,
        waiting: None,
        answer: Vec::with_capacity(512),
    })
}

/// Writes a whole request; an idle connection's send buffer takes it in one call, and in the
/// rare case it does not, the rest is written blocking.
fn write_whole(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<()> {
    let written = match stream.write(request) {
        Ok(n) => n,
        Err(err) if err.kind() == ErrorKind::WouldBlock => 0,
        Err(err) => return Err(err),
    };
    if written < request.len() {
        stream.set_nonblocking(false)?;
        stream.write_all(&request[written..])?;
        stream.set_nonblocking(true)?;
    }
    Ok(())
}

/// Reads what the socket has; the status and whether the server closes the connection once an
/// answer is complete, `None` while it is not.
fn read_answer(conn: &mut Conn) -> Result<Option<(u16, bool)>, &'static str> {
    let mut chunk = [0u8; 4096];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Err("connection closed"),
            Ok(n) => conn.answer.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err("read error"),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) =
        parsed.parse(&conn.answer).map_err(|_| "malformed answer")?
    else {
        return Ok(None);
    };
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let body_len: usize = header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if conn.answer.len() < head_len + body_len {
        return Ok(None);
    }
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    Ok(Some((parsed.code.unwrap_or(0), close)))
}

fn drop_conn(epoll: &impl std::os::fd::AsFd, conns: &mut [Option<Conn>], slot: usize) {
    if let Some(conn) = conns.get_mut(slot).and_then(Option::take) {
        let _ = epoll::delete(epoll, &conn.stream);
    }
}
