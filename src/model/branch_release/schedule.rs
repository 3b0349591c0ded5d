//! Awake hours: whether a moment is inside them, when they last closed, and when they next open
//! or close. Pure; time zones from the tz database built into the binary (a container image may
//! have none).

use jiff::civil::{Date, Time, Weekday as JiffWeekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::api::{AwakeSchedule, Weekday};

/// A schedule ready to answer questions.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    days: Vec<JiffWeekday>,
    from: Time,
    /// None for `24:00`: the end of the day.
    to: Option<Time>,
    zone: TimeZone,
}

fn weekday(day: Weekday) -> JiffWeekday {
    match day {
        Weekday::Monday => JiffWeekday::Monday,
        Weekday::Tuesday => JiffWeekday::Tuesday,
        Weekday::Wednesday => JiffWeekday::Wednesday,
        Weekday::Thursday => JiffWeekday::Thursday,
        Weekday::Friday => JiffWeekday::Friday,
        Weekday::Saturday => JiffWeekday::Saturday,
        Weekday::Sunday => JiffWeekday::Sunday,
    }
}

impl Schedule {
    /// Parses the spec's schedule; Err says what is wrong (an unknown time zone, say).
    pub fn parse(spec: &AwakeSchedule) -> Result<Schedule, String> {
        let zone_name = spec.time_zone.as_deref().unwrap_or("UTC");
        let zone = TimeZone::get(zone_name).map_err(|_| {
            format!("awakeSchedule.timeZone {zone_name:?} is not a known time zone")
        })?;
        let time = |text: &str| -> Result<Time, String> {
            text.parse::<Time>()
                .map_err(|_| format!("awakeSchedule: {text:?} is not a time of day (HH:MM)"))
        };
        let days = if spec.days.is_empty() {
            vec![
                JiffWeekday::Monday,
                JiffWeekday::Tuesday,
                JiffWeekday::Wednesday,
                JiffWeekday::Thursday,
                JiffWeekday::Friday,
            ]
        } else {
            spec.days.iter().copied().map(weekday).collect()
        };
        Ok(Schedule {
            days,
            from: time(&spec.from)?,
            to: if spec.to == "24:00" {
                None
            } else {
                Some(time(&spec.to)?)
            },
            zone,
        })
    }

    /// (opens, closes) on `date`, if it is an awake day.
    fn window(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days.contains(&date.weekday()) {
            return None;
        }
        let at = |date: Date, time: Time| {
            date.to_datetime(time)
                .to_zoned(self.zone.clone())
                .ok()
                .map(|z| z.timestamp())
        };
        let opens = at(date, self.from)?;
        let closes = match self.to {
            Some(to) => at(date, to)?,
            None => at(date.checked_add(1.day()).ok()?, Time::midnight())?,
        };
        Some((opens, closes))
    }

    /// The windows of the days around `now` (a week back, a week ahead).
    fn windows(&self, now: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let today = now.to_zoned(self.zone.clone()).date();
        (-8i64..=8)
            .filter_map(|offset| today.checked_add(offset.days()).ok())
            .filter_map(|date| self.window(date))
            .collect()
    }

    pub fn contains(&self, now: Timestamp) -> bool {
        self.windows(now)
            .iter()
            .any(|(opens, closes)| *opens <= now && now < *closes)
    }

    /// When the awake hours last closed, at or before `now`.
    pub fn last_close(&self, now: Timestamp) -> Option<Timestamp> {
        self.windows(now)
            .into_iter()
            .map(|(_, closes)| closes)
            .filter(|closes| *closes <= now)
            .max()
    }

    /// The next time the awake hours open or close, after `now`.
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        self.windows(now)
            .into_iter()
            .flat_map(|(opens, closes)| [opens, closes])
            .filter(|at| *at > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office_hours() -> Schedule {
        Schedule::parse(&AwakeSchedule {
            days: Vec::new(),
            from: "08:00".into(),
            to: "18:00".into(),
            time_zone: Some("Europe/Helsinki".into()),
        })
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn office_hours_in_helsinki() {
        let schedule = office_hours();
        // Wednesday 2026-12-02, 09:00 in Helsinki is 07:00 UTC (winter, UTC+2).
        assert!(schedule.contains(at("2026-12-02T07:00:00Z")));
        assert!(!schedule.contains(at("2026-12-02T05:59:59Z")));
        assert!(
            !schedule.contains(at("2026-12-02T16:00:00Z")),
            "18:00 there"
        );
        // Saturday: not a working day.
        assert!(!schedule.contains(at("2026-12-05T10:00:00Z")));
        assert_eq!(
            schedule.last_close(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-04T16:00:00Z")),
            "Friday 18:00"
        );
        assert_eq!(
            schedule.next_change(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-07T06:00:00Z")),
            "Monday 08:00"
        );
    }

    #[test]
    fn an_unknown_time_zone_is_refused_with_its_name() {
        let error = Schedule::parse(&AwakeSchedule {
            days: vec![Weekday::Monday],
            from: "08:00".into(),
            to: "24:00".into(),
            time_zone: Some("Mars/Olympus".into()),
        })
        .unwrap_err();
        assert!(error.contains("Mars/Olympus"), "{error}");
    }
}
