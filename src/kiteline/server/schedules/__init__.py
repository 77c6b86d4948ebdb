"""Pipeline schedules: builds on a cron timetable."""
